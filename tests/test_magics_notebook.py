"""Run All of a generated notebook through nbclient: cells in order, continuity, and a saved file free of the key."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from magics_kernel import FAKE_KEY
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.timeout(120)

CELLS = [
    "%load_ext wcode_magic\nimport os, wcode_magic as wm",
    "%wcode use local\nwm.configure(api_key=os.environ['WCODE_API_KEY'])",
    "%%chat --seed 3 --max-tokens 30 --logprobs 3\nName three rivers.",
    "first = wm.last()\nassert first.status == 'done' and first.logprobs",
    "%%chat --seed 4 --max-tokens 30\nWhich is longest?",
    "sent = wm.last().request['messages']\n"
    "assert [m['content'] for m in sent[::2]] == ['Name three rivers.', 'Which is longest?']\n"
    "assert sent[1]['content'] == first.text\n"
    "print('CONTINUITY OK')",
    "%wcode history 2",
    "%%chat --header 'X-Wcode-Fault: status=401'\nThis fails like a missing key.",
    "print('must not run after the failed cell')",
]


def test_run_all_in_order_and_no_key_in_the_saved_notebook(tmp_path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    env_before = dict(os.environ)
    os.environ.update(
        WCODE_API_KEY=FAKE_KEY,
        WCODE_LOCAL_TEST_MODE="1",
        WCODE_CONFIG_DIR=str(tmp_path / "config"),
        WCODE_DATA_DIR=str(tmp_path / "data"),
    )
    try:
        client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        with pytest.raises(CellExecutionError) as info:
            client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert "AuthenticationError: HTTP 401" in str(info.value)
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    cells = nb.cells
    assert [c.execution_count for c in cells[:8]] == list(range(1, 9))  # in order, each after the previous
    assert cells[8].execution_count is None and not cells[8].outputs  # Run All stopped at the failure
    assert "CONTINUITY OK" in cells[5].outputs[0]["text"]
    answer = cells[2].outputs[-1]
    assert answer["output_type"] == "execute_result" and "tokens" in answer["data"]["text/markdown"]
    error = cells[7].outputs[-1]
    assert error["output_type"] == "error" and len(error["traceback"]) == 1
    assert "%wcode key" in error["traceback"][0]
    assert FAKE_KEY not in path.read_text()
    assert FAKE_KEY not in json.dumps(nb)
    data = tmp_path / "data"
    assert (data / "history.sqlite").exists()
    for stored in data.iterdir():  # the database and its WAL
        assert FAKE_KEY.encode() not in stored.read_bytes()
