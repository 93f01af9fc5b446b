"""``wcode-magic demo``: one chat streamed in the terminal, then every notebook in ``notebooks/`` executed.

It is what ``make demo`` runs, so a newcomer sees the whole tool work in one command: the chat shows thinking and
answer arriving live and says whether it talks to wcode.net or to the bundled local model; the notebooks are run
top to bottom in real kernels (nbclient) and written, executed, to a separate directory to open afterwards.

``--save`` writes the outputs back into the notebooks instead: that is how the outputs committed to the
repository are refreshed. Those must come from the local model and carry no key, so a saving run always gets an
offline environment (:func:`offline_env`: no key variable, and config/data directories of its own, so neither a
stored key nor the user's history is read), whatever the caller's environment holds. An ordinary run uses the
user's key and settings but records into a scratch history: running the demo leaves the user's own alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

DEMO_PROMPT = "Why is the sky blue?"
DEMO_SEED = 17  # the same answer on every run; on the local model, one that stays on topic (01-quickstart uses it too)
DEFAULT_NOTEBOOKS = Path("notebooks")
DEFAULT_OUT = Path("build") / "notebooks"
CELL_TIMEOUT_S = 300  # a hosted thinking model can take minutes on one cell; the local model takes well under 1 s
# Variables that would point a kernel at wcode.net, another server or another model than the notebooks expect.
_ONLINE_VARIABLES = ("WCODE_API_KEY", "WCODE_BASE_URL", "WCODE_MODEL", "WCODE_HISTORY", "WCODE_LOCAL_TEST_MODE")


def offline_env(base: Mapping[str, str], home: str | os.PathLike[str]) -> dict[str, str]:
    """``base`` without anything that selects wcode.net, with config and data directories under ``home``.

    The key can come from ``WCODE_API_KEY`` or from the key file in the config directory; a fresh config
    directory rules out the second, and a fresh data directory keeps the run's exchanges out of the user's history.
    """
    env = {k: v for k, v in base.items() if k not in _ONLINE_VARIABLES}
    env["WCODE_CONFIG_DIR"] = os.path.join(home, "config")
    env["WCODE_DATA_DIR"] = os.path.join(home, "data")
    return env


# -- the terminal chat -------------------------------------------------------------------------------------------
def terminal_chat(prompt: str = DEMO_PROMPT, *, local: bool = False, out: TextIO | None = None) -> bool:
    """Stream one answer with its thinking as plain text, after a line saying where it comes from.

    Returns False when the request failed (the message says what to do); a Ctrl-C keeps the partial answer.
    """
    from .core import session
    from .core.client import chat
    from .core.errors import StoppedError, WcodeError
    from .notebook.live import TerminalView

    out = out or sys.stdout
    if local:
        url = session.use_local()
        print(f"Using the bundled local model ({session.SESSION.model} on {url}), as asked.", file=out)
    else:
        print(session.auto(), file=out)
    print(f"\n>>> {prompt}", file=out, flush=True)
    view = TerminalView(out)
    holder: list[Any] = []

    def on_event(ev: Any) -> None:
        if ev.kind == "start":
            holder.append(ev.value)
        elif holder:
            view.update(holder[0])

    view.begin(session.SESSION.resolve_model(None))
    try:
        response = chat(prompt, reasoning=True, seed=DEMO_SEED, on_event=on_event)
    except StoppedError as e:
        view.finish(e.partial, note="stopped")
        raise KeyboardInterrupt from None
    except WcodeError as e:
        view.finish(e.partial, note=f"{type(e).__name__}: {e.message}")
        return False
    view.finish(response)
    return True


# -- the notebooks -----------------------------------------------------------------------------------------------
@dataclass
class NotebookRun:
    """What one notebook's execution gave: where it went, how long it took, what it talked to, how it ended."""

    path: Path
    written: Path | None
    cells: int
    seconds: float
    backend: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line for the terminal."""
        where = f" -> {self.written}" if self.written is not None else ""
        state = "ok" if self.ok else f"FAILED: {self.error}"
        return f"{self.path.name:<34} {state}  {self.cells} code cells  {self.seconds:5.1f} s  {self.backend}{where}"


def backend_of(nb: Any) -> str:
    """What the notebook said it uses: its first code cell prints ``wm.auto()``'s sentence."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if "local model" in text:
            return "local model"
        if "wcode.net" in text:
            return "wcode.net"
        return "backend not stated"
    return "no code cells"


def _failure(nb: Any, error: BaseException) -> str:
    """The failing cell's number and the error's first line (nbclient's message is a whole traceback)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, 1):
        tags = cell.get("metadata", {}).get("tags", [])
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and "raises-exception" not in tags:
            evalue = str(errors[0].get("evalue", "")).strip().splitlines()
            return f"cell {number}: {errors[0].get('ename')}: {evalue[0] if evalue else ''}"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def execute(
    path: Path, *, env: Mapping[str, str], workdir: Path, timeout: int = CELL_TIMEOUT_S
) -> tuple[Any, NotebookRun]:
    """Execute one notebook in a fresh kernel started with ``env``; the executed notebook and its summary.

    The kernel talks over Unix sockets in ``workdir`` (over TCP, ipykernel prints an encryption warning per
    kernel into the demo's output). Neither timings nor widget state are saved: both would change every saved
    notebook on every refresh (widget ids are random; the panel alone is 300 widget models) for nothing a
    reader of the file can use, since widgets need a live kernel anyway.
    """
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"))
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        record_timing=False,
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    error: str | None = None
    try:
        client.execute(env=dict(env), cleanup_kc=True)  # shut the kernel down: nbclient does not for a given km
    except Exception as e:  # CellExecutionError, DeadKernelError, a timeout...: each is reported, none ends the demo
        error = _failure(nb, e)
    cells = sum(1 for c in nb.cells if c.cell_type == "code")
    return nb, NotebookRun(path, None, cells, time.perf_counter() - started, backend_of(nb), error)


def run_notebooks(
    directory: Path,
    out_dir: Path,
    *,
    save: bool = False,
    local: bool = False,
    out: TextIO | None = None,
) -> list[NotebookRun]:
    """Execute every ``*.ipynb`` of ``directory`` in name order, printing one line per notebook.

    Executed copies go to ``out_dir``; with ``save`` the notebooks themselves are rewritten (offline, see the
    module docstring), except after a failure: then the copy goes to ``out_dir`` and the notebook keeps its
    outputs. ``local`` runs offline without saving. A missing or empty directory is reported and nothing runs
    (the command's exit status then says the demo did not run).
    """
    out = out or sys.stdout
    paths = sorted(directory.glob("*.ipynb")) if directory.is_dir() else []
    if not paths:
        print(f"No notebooks in {directory}/: none executed (give their place with --notebooks DIR).", file=out)
        return []
    try:
        import nbclient  # noqa: F401  (a test extra: say how to get it rather than fail with a traceback)
    except ImportError:
        print(
            'Running the notebooks needs nbclient: pip install "wcode-magic[test]" (or pip install nbclient).', file=out
        )
        return []
    import nbformat

    offline = save or local
    target = "back in place" if save else f"to {out_dir}/"
    how = "offline, on the local model" if offline else "with this environment (wcode.net if a key is set)"
    print(f"\nExecuting {len(paths)} notebooks from {directory}/ {how}, writing them {target}:", file=out, flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="wcode-demo-") as work:
        for path in paths:
            home = Path(work) / path.stem  # offline: each notebook its own config and history, as in the tests
            # the user's key and settings count (online run), their history does not fill up with demo rows
            env = offline_env(os.environ, home) if offline else {**os.environ, "WCODE_DATA_DIR": str(home / "data")}
            home.mkdir()
            nb, run = execute(path, env=env, workdir=home)
            run.written = path if save and run.ok else out_dir / path.name
            run.written.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, run.written)
            print("  " + run.summary(), file=out, flush=True)
            runs.append(run)
    failed = [r for r in runs if not r.ok]
    print(f"{len(runs) - len(failed)} of {len(runs)} notebooks ran through.", file=out)
    if not save:
        print(f"Open them in JupyterLab: {open_command(out_dir)}", file=out)
    return runs


def open_command(folder: Path) -> str:
    """The one command that opens ``folder`` in JupyterLab from where the demo ran: this interpreter's own
    ``jupyter`` (the venv ``make demo`` made, which has JupyterLab), ``--allow-root`` where Jupyter needs it."""
    jupyter = Path(sys.executable).with_name("jupyter")
    program = str(jupyter) if jupyter.exists() else "jupyter"
    with contextlib.suppress(ValueError):
        program = str(Path(program).relative_to(Path.cwd()))
    root = " --allow-root" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return f"{program} lab {folder}{root}"
