"""Binder: build the environment the way mybinder.org (repo2docker) does, then run the quickstart in it, offline.

repo2docker clones the repository, installs ``binder/requirements.txt`` into the image's Python, then runs
``binder/postBuild`` from the repository root with that Python first on PATH. Here: a copy of the repository's
files (what a clone plus the work in progress would hold), a fresh venv in a temporary directory, the same two
steps, then ``notebooks/01-quickstart.ipynb`` executed by a kernel running in that venv. The kernel has no key and
every proxy variable points at a closed port (only 127.0.0.1 is exempt), so a notebook that reached for the
network instead of the bundled local model would fail here as it would on a disconnected Binder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = Path("notebooks/01-quickstart.ipynb")
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so any proxied request fails at once
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _pyproject_dependencies() -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the suite runs there
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def test_binder_requirements_are_the_package_dependencies():
    """requirements.txt is the cached layer: it must hold exactly what ``pip install .`` would otherwise fetch."""
    assert _requirement_lines((REPO / "binder/requirements.txt").read_text()) == _pyproject_dependencies(), (
        "binder/requirements.txt and pyproject.toml's [project] dependencies differ: copy the list across"
    )


def _repository_copy(dest: Path) -> Path:
    """The files a clone would have, plus files not committed yet (the notebooks may be in progress)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not there to copy
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _clean_env(venv_dir: Path, home: Path) -> dict[str, str]:
    """This process's environment without anything that would leak the test venv, a key or the repo's source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCODE_")}
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["MPLCONFIGDIR"] = str(home / "matplotlib")  # postBuild fills it; the kernel then reads it, as on Binder
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def _execute_in_venv(path: Path, python: Path, env: dict[str, str], scratch: Path) -> nbformat.NotebookNode:
    """Run every cell with a kernel started by the venv's Python (jupyter_client and nbclient stay ours)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    spec_dir = scratch / "kernels" / "binder-venv"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Binder venv",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(
        kernel_name="binder-venv", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    )
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


def _first_output_text(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                return out["text"]
            data = out.get("data", {})
            for mime in ("text/markdown", "text/plain", "text/html"):
                if mime in data:
                    return data[mime]
    return ""


@pytest.mark.timeout(900)  # a fresh CI machine downloads the wheels from PyPI
def test_binder_build_then_quickstart_offline(tmp_path):
    src = _repository_copy(tmp_path / "repo")
    assert (src / QUICKSTART).is_file(), f"{QUICKSTART} is not in the repository"
    venv_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(venv_dir)
    python = venv_dir / "bin" / "python"
    env = _clean_env(venv_dir, tmp_path / "home")

    # repo2docker's two steps, from the repository root. (--no-compile: byte-compiling every module of pandas,
    # numpy and matplotlib takes longer than the install and changes nothing this test checks.)
    _run([str(python), "-m", "pip", "install", "--no-compile", "-r", "binder/requirements.txt"], cwd=src, env=env)
    _run(["./binder/postBuild"], cwd=src, env=env)

    # wcode-magic is installed into the venv (not found in the source tree), with its console script
    where = subprocess.run(
        [str(python), "-c", "import wcode_magic; print(wcode_magic.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv_dir), where
    assert (venv_dir / "bin" / "wcode-magic").is_file()

    kernel_env = {
        **env,
        "WCODE_CONFIG_DIR": str(tmp_path / "config"),
        "WCODE_DATA_DIR": str(tmp_path / "data"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        **{name: DEAD_PROXY for name in PROXY_VARIABLES},
        **{name: "127.0.0.1,localhost" for name in ("NO_PROXY", "no_proxy")},
    }
    nb = _execute_in_venv(src / QUICKSTART, python, kernel_env, tmp_path)

    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count for c in code), "not every code cell ran"  # nbclient stops at an error
    first = _first_output_text(nb)
    assert "local model" in first.lower(), f"the first output should say it uses the local model; it says {first!r}"
