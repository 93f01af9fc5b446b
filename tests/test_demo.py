"""``wcode-magic demo`` (what ``make demo`` runs), as a user runs it: a subprocess, real kernels, the local model.

Small notebooks written here stand in for ``notebooks/`` (nbval runs the real ones): one that works like the
teaching notebooks, one that fails on purpose. No test reaches the network: the environments carry either no key
or one that ``--save`` must ignore.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from magics_kernel import FAKE_KEY

from wcode_magic.demo import offline_env

pytestmark = pytest.mark.timeout(240)

GOOD = [
    "%load_ext wcode_magic\nimport wcode_magic as wm\n\nprint(wm.auto())",
    "%%chat --seed 3 --max-tokens 12\nWhy is the sky blue?",
    "print('answer has', len(wm.last().text), 'characters')",
]
FAILING = [*GOOD[:1], "1 / 0", "print('never runs')"]


def _notebook(path: Path, sources: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)


def _demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the demo from ``tmp_path`` (its default directories are relative to the current one)."""
    if env is None:
        env = offline_env(os.environ, tmp_path / "user")
    return subprocess.run(
        [sys.executable, "-m", "wcode_magic.cli", "demo", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )


def _summary(stdout: str, name: str) -> str:
    lines = [line for line in stdout.splitlines() if line.strip().startswith(name)]
    assert len(lines) == 1, stdout
    return lines[0]


def test_demo_streams_a_chat_then_executes_the_notebooks(tmp_path):
    _notebook(tmp_path / "notebooks" / "01-good.ipynb", GOOD)
    _notebook(tmp_path / "notebooks" / "02-failing.ipynb", FAILING)
    done = _demo(tmp_path)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr  # one notebook failed
    assert "No WCODE_API_KEY set: using the bundled local model" in out
    assert out.index("[thinking]") < out.index("[answer]") < out.index("local/ngram-thinking · tokens")
    assert "encryption" not in done.stderr  # kernels on Unix sockets: no per-kernel TCP warning in the demo
    assert "Parent appears to have exited" not in done.stderr  # each kernel shut down after its notebook
    good = _summary(out, "01-good.ipynb")
    assert " ok " in good and "3 code cells" in good and "local model" in good
    assert "build/notebooks/01-good.ipynb" in good
    failing = _summary(out, "02-failing.ipynb")
    assert "FAILED: cell 2: ZeroDivisionError: division by zero" in failing
    assert "1 of 2 notebooks ran through." in out
    jupyter = Path(sys.executable).with_name("jupyter")
    root = " --allow-root" if os.geteuid() == 0 else ""
    assert out.splitlines()[-1] == f"Open them in JupyterLab: {jupyter} lab build/notebooks{root}"
    assert jupyter.exists()  # the command names a program that is there

    executed = nbformat.read(tmp_path / "build/notebooks/01-good.ipynb", as_version=4)
    assert [c.execution_count for c in executed.cells] == [1, 2, 3]
    assert "answer has" in executed.cells[2].outputs[0]["text"]
    chat = executed.cells[1].outputs
    assert [o["output_type"] for o in chat] == ["display_data"], "one output: the live view, ending as the answer"
    assert "tokens" in chat[0]["data"]["text/markdown"]
    assert "execution" not in executed.cells[0].metadata  # no timings saved
    broken = nbformat.read(tmp_path / "build/notebooks/02-failing.ipynb", as_version=4)
    assert broken.cells[1].outputs[0]["ename"] == "ZeroDivisionError" and not broken.cells[2].outputs
    source = nbformat.read(tmp_path / "notebooks/01-good.ipynb", as_version=4)
    assert all(not c.outputs for c in source.cells), "without --save the notebooks themselves are left alone"
    with sqlite3.connect(tmp_path / "user" / "data" / "history.sqlite") as db:
        prompts = [row[0] for row in db.execute("SELECT prompt FROM exchanges")]
    assert prompts == ["Why is the sky blue?"], "only the terminal chat is the user's; the notebooks record elsewhere"


def test_save_runs_offline_even_with_a_key_and_keeps_a_failed_notebook(tmp_path):
    _notebook(tmp_path / "nb" / "good.ipynb", GOOD)
    _notebook(tmp_path / "nb" / "failing.ipynb", FAILING)
    before = (tmp_path / "nb" / "failing.ipynb").read_text()
    config = tmp_path / "user" / "config"
    config.mkdir(parents=True)
    (config / "key").write_text(FAKE_KEY)  # a stored key too: --save must not read it
    env = {**os.environ, "WCODE_API_KEY": FAKE_KEY, "WCODE_CONFIG_DIR": str(config)}
    done = _demo(tmp_path, "--notebooks", "nb", "--out", "copies", "--save", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Using the bundled local model" in done.stdout  # the chat too: a saving run is offline throughout
    assert "-> nb/good.ipynb" in _summary(done.stdout, "good.ipynb")
    assert "-> copies/failing.ipynb" in _summary(done.stdout, "failing.ipynb")

    saved = (tmp_path / "nb" / "good.ipynb").read_text()
    assert FAKE_KEY not in saved and FAKE_KEY[:12] not in saved
    nb = nbformat.reads(saved, as_version=4)
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.cells[0].outputs[0]["text"].startswith("No WCODE_API_KEY set: using the bundled local model")
    assert "widgets" not in nb.metadata
    assert (tmp_path / "nb" / "failing.ipynb").read_text() == before, "a failed run never overwrites a notebook"
    assert json.loads((tmp_path / "copies" / "failing.ipynb").read_text())["cells"][1]["outputs"]


@pytest.mark.parametrize(("chat", "where"), [("--no-chat", "missing"), ("--no-chat", "empty"), ("--local", "missing")])
def test_no_notebooks_is_a_failure_with_a_hint(tmp_path, chat, where):
    (tmp_path / "empty").mkdir()
    done = _demo(tmp_path, chat, "--notebooks", where)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"No notebooks in {where}/: none executed (give their place with --notebooks DIR)." in done.stdout
    assert not (tmp_path / "build").exists()


def test_offline_env_drops_every_way_to_a_key_or_another_server(tmp_path):
    base = {
        "PATH": "/bin",
        "WCODE_API_KEY": FAKE_KEY,
        "WCODE_BASE_URL": "https://example.org/v1",
        "WCODE_MODEL": "r1",
        "WCODE_CONFIG_DIR": "/home/me/.config/wcode-magic",
        "WCODE_DATA_DIR": "/home/me/.local/share/wcode-magic",
    }
    env = offline_env(base, tmp_path)
    assert env == {
        "PATH": "/bin",
        "WCODE_CONFIG_DIR": str(tmp_path / "config"),
        "WCODE_DATA_DIR": str(tmp_path / "data"),
    }
