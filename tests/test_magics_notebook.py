"""Run All of a generated notebook through nbclient: cells in order, continuity, and a saved file free of the key."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from magics_kernel import FAKE_KEY
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from test_magics import SPY

pytestmark = pytest.mark.timeout(120)

CELLS = [
    "%load_ext wcode_magic\nimport os, wcode_magic as wm",
    "%wcode use local\nwm.configure(api_key=os.environ['WCODE_API_KEY'])",
    "%%chat --seed 3 --max-tokens 90 --logprobs 3\nName three rivers.",
    "first = wm.last()\nassert first.status == 'done' and first.logprobs",
    "%%chat --seed 4 --max-tokens 90\nWhich is longest?",
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
    assert answer["output_type"] == "display_data" and "tokens" in answer["data"]["text/markdown"]
    for number in (2, 4):  # each %%chat cell saves one output, its answer: none left empty
        assert [o.get("data", {}) != {} for o in cells[number].outputs] == [True], cells[number].outputs
    error = cells[7].outputs[-1]
    assert error["output_type"] == "error" and len(error["traceback"]) == 1
    assert "%wcode key" in error["traceback"][0]
    assert FAKE_KEY not in path.read_text()
    assert FAKE_KEY not in json.dumps(nb)
    data = tmp_path / "data"
    assert (data / "history.sqlite").exists()
    for stored in data.iterdir():  # the database and its WAL
        assert FAKE_KEY.encode() not in stored.read_bytes()


SENT_KEY = "sk-test-SENT-to-the-local-server-9876543210"  # a second fake key, one that really goes out

SENT_CELLS = [
    "%load_ext wcode_magic\nimport os, wcode_magic as wm\nfrom wcode_magic import local",
    SPY,
    # configured for the local server explicitly, so it is sent there with every request
    "wm.configure(api_key=os.environ['WCODE_API_KEY'], base_url=local.start(), model='local/ngram-thinking', "
    "max_retries=0)",
    "%%chat --max-tokens 60 --logprobs 2\nName a river.",
    "%%chat --max-tokens 60 -o r\nAnd a lake?",
    "%wcode -- say hi",
    "wm.chat('a sync call', max_tokens=20)",
    "%%chat --header 'X-Wcode-Fault: status=401'\nrefused",
    "%%chat --max-tokens 300 --header 'X-Wcode-Fault: error_after=5'\nbroken",
    "print(len(key_sent), len(key_not_sent))",
    "print(repr(wm.SESSION), repr(wm.SESSION.api_key), repr(r), r.request, vars(r))",
    "%wcode config",
    "%wcode history 5",
    "wm.history(5)",
    "%wcode usage",
    "p = wm.panel(prompt='Name a sea.')\np",
    "print(p.code_text())",
]


def test_a_key_really_sent_to_the_local_server_is_in_no_output_notebook_or_history(tmp_path) -> None:
    cells = [nbformat.v4.new_code_cell(src) for src in SENT_CELLS]
    for cell in cells:
        if "X-Wcode-Fault" in cell.source:
            cell.metadata["tags"] = ["raises-exception"]  # an expected failure: Run All goes on
    nb = nbformat.v4.new_notebook(cells=cells)
    env_before = dict(os.environ)
    os.environ.update(
        WCODE_API_KEY=SENT_KEY,
        WCODE_LOCAL_TEST_MODE="1",
        WCODE_CONFIG_DIR=str(tmp_path / "config"),
        WCODE_DATA_DIR=str(tmp_path / "data"),
    )
    try:
        NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    outputs = {src: c.outputs for src, c in zip(SENT_CELLS, nb.cells, strict=True)}
    counts = outputs["print(len(key_sent), len(key_not_sent))"][0]["text"].split()
    assert int(counts[0]) >= 6 and counts[1] == "0", "every request carried the key"
    assert "AuthenticationError" in json.dumps(outputs[SENT_CELLS[7]])
    assert "StreamError" in json.dumps(outputs[SENT_CELLS[8]])
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    assert SENT_KEY not in path.read_text()
    assert SENT_KEY not in json.dumps(nb)
    stored = [f for f in (tmp_path / "data").rglob("*") if f.is_file()]
    assert any(f.name == "history.sqlite" for f in stored)
    for f in stored:  # the database, its WAL and anything else written there
        assert SENT_KEY.encode() not in f.read_bytes(), f
