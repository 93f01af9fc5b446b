"""The notebooks as committed: outputs from a complete run on the local model, and no key anywhere.

nbval executes every notebook in ``notebooks/`` as part of ``pytest -q`` (see pyproject.toml and
notebooks/conftest.py); these tests check the files themselves, which is what GitHub shows and what a newcomer
opens first. Refresh the outputs with ``wcode-magic demo --save`` (an offline run, whatever key is set).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import REAL_WCODE_KEY
from magics_kernel import FAKE_KEY

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
FIRST_CELL = ("%load_ext wcode_magic", "import wcode_magic as wm")
LOCAL_SENTENCE = "No WCODE_API_KEY set: using the bundled local model"
# Strings shaped like credentials: OpenAI-style keys, bearer tokens, a key passed as a literal.
KEY_LIKE = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{12,}|api_key\s*[=:]\s*['\"][^'\"]{8,}['\"]", re.IGNORECASE
)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_the_teaching_notebooks_exist_and_nbval_runs_them():
    names = {p.name for p in NOTEBOOKS}
    assert {"01-quickstart.ipynb", "02-panel.ipynb", "03-logprobs.ipynb"} <= names
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks" in options["testpaths"]
    assert "--nbval-lax" in options["addopts"] and "--nbval-sanitize-with" in options["addopts"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_outputs_are_a_complete_run_on_the_local_model(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title cell first"
    code = _code_cells(nb)
    first = code[0]
    assert tuple(first.source.splitlines()[:2]) == FIRST_CELL and "print(wm.auto())" in first.source
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "every cell, once, top to bottom"
    assert _stream_text(first).startswith(LOCAL_SENTENCE), "the saved outputs must come from the local model"
    for number, cell in enumerate(code, 1):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        expected = "raises-exception" in cell.metadata.get("tags", [])
        assert bool(errors) == expected, f"cell {number}: an error output only where the cell is meant to fail"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_widgets_read_as_one_line_without_a_kernel(path):
    """GitHub shows a widget's text/plain: the panel must be a short line, not the repr of every control."""
    nb = nbformat.read(path, as_version=4)
    for number, cell in enumerate(_code_cells(nb), 1):
        for out in cell.outputs:
            plain = out.get("data", {}).get("text/plain", "")
            assert not plain.startswith(("VBox(", "HBox(", "Tab(")), f"cell {number} shows a widget's long repr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_key_or_home_path_in_the_saved_notebook(path):
    text = path.read_text(encoding="utf-8")
    assert not KEY_LIKE.findall(text)
    assert FAKE_KEY not in text
    if REAL_WCODE_KEY:
        assert REAL_WCODE_KEY not in text
    home = str(Path.home())
    if len(home) > 1:
        assert home + "/" not in text, "saved outputs show a path in the user's home directory"


def test_key_pattern_finds_keys():
    """The scan above is only as good as its pattern: it must catch the shapes it claims to."""
    for leaked in (FAKE_KEY, "Authorization: Bearer abcdefghijklmnop", "wm.configure(api_key='hunter2hunter2')"):
        assert KEY_LIKE.search(leaked), leaked
    assert not KEY_LIKE.search("key           sk-…23 from WCODE_API_KEY, sent to wcode.net only")
