"""The SQLite history: one row per exchange with its messages and logprobs, switchable off, safe across kernels."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import wcode_magic as wm
from wcode_magic.analysis import history as history
from wcode_magic.core.response import Response

CHUNKS = [
    {"id": "gen-1", "model": "local/ngram", "choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]},
    {
        "id": "gen-1",
        "choices": [
            {
                "index": 0,
                "delta": {"content": "Hello"},
                "logprobs": {"content": [{"token": "Hello", "logprob": -0.5, "bytes": None, "top_logprobs": []}]},
            }
        ],
    },
    {
        "id": "gen-1",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    },
]


def make_response(text_suffix: str = "") -> Response:
    request = {
        "model": "local/ngram",
        "messages": [{"role": "user", "content": "hi" + text_suffix}],
        "temperature": 0.2,
        "logprobs": True,
        "stream": True,
    }
    r = Response(request, base_url="http://127.0.0.1:8123/v1")
    for chunk in CHUNKS:
        r.feed(chunk)
    r.finish(complete=True)
    return r


@pytest.fixture
def data_dir(tmp_path, monkeypatch, session):
    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WCODE_HISTORY", raising=False)
    return tmp_path


def test_record_and_read_back(data_dir) -> None:
    history.record(make_response())
    frame = wm.history()
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["model"], row["host"], row["text"], row["reasoning"]) == (
        "local/ngram",
        "127.0.0.1:8123",
        "Hello",
        "hmm",
    )
    assert row["params"] == {"temperature": 0.2, "logprobs": True}
    assert row["messages"] == [{"role": "user", "content": "hi"}]
    assert row["logprobs"][0]["token"] == "Hello" and row["logprobs"][0]["logprob"] == -0.5
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (3, 2, 5)
    assert row["complete"] and row["status"] == "done" and row["response_id"] == "gen-1"
    assert math.isclose(row["mean_logprob"], -0.5)
    assert str(frame["time"].dtype).startswith("datetime64")


def test_last_n_oldest_first(data_dir) -> None:
    for i in range(5):
        history.record(make_response(str(i)))
    frame = history.history(2)
    assert [m[0]["content"] for m in frame["messages"]] == ["hi3", "hi4"]
    assert len(history.history()) == 5


def test_off_by_env_or_session(data_dir, monkeypatch, session) -> None:
    monkeypatch.setenv("WCODE_HISTORY", "off")
    history.record(make_response())
    assert not (data_dir / "history.sqlite").exists()
    monkeypatch.delenv("WCODE_HISTORY")
    session.update(history=False)
    history.record(make_response())
    assert len(history.history()) == 0
    session.update(history=True)
    history.record(make_response())
    assert len(history.history()) == 1


def test_unwritable_location_warns_instead_of_failing(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WCODE_DATA_DIR", str(blocker / "sub"))
    with pytest.warns(wm.WcodeWarning, match="Could not write the history"):
        history.record(make_response())


def test_two_processes_writing_at_once_lose_nothing(data_dir) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_history import make_response
        from wcode_magic.analysis import history as history
        for i in range(150):
            history.record(make_response(sys.argv[1] + str(i)))
        """
    )
    env = {**os.environ, "WCODE_DATA_DIR": str(data_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", script, tag], env=env) for tag in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    prompts = [m[0]["content"] for m in history.history()["messages"]]
    assert len(prompts) == 300
    assert {p for p in prompts if p.startswith("hia")} == {f"hia{i}" for i in range(150)}
    assert {p for p in prompts if p.startswith("hib")} == {f"hib{i}" for i in range(150)}


def _run(script: str, data_dir) -> list[str]:
    """Run ``script`` in a fresh interpreter (audit hooks cannot be removed) and return its printed lines."""
    prelude = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_history import make_response
from wcode_magic.analysis import history as history
opened = []
sys.addaudithook(lambda event, args: event == 'sqlite3.connect' and opened.append(str(args[0])))
"""
    env = {**os.environ, "WCODE_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_recording_reuses_one_connection(data_dir) -> None:
    out = _run(
        """
        for i in range(20):
            history.record(make_response(str(i)))
        print(len(opened), len(history.history()))
        """,
        data_dir,
    )
    assert out == ["1", "20"]  # one connection for 20 rows (counted before history() opens its reader)


def test_a_deleted_or_moved_history_file_is_reopened(data_dir, tmp_path) -> None:
    out = _run(
        f"""
        history.record(make_response("a"))
        for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite-shm"):
            if os.path.exists(os.path.join({str(data_dir)!r}, name)):
                os.remove(os.path.join({str(data_dir)!r}, name))
        history.record(make_response("b"))  # not into the unlinked file
        print([m[0]["content"] for m in history.history()["messages"]] == ["hib"])
        os.environ["WCODE_DATA_DIR"] = {str(tmp_path / "elsewhere")!r}
        history.record(make_response("c"))
        print([m[0]["content"] for m in history.history()["messages"]] == ["hic"])
        """,
        data_dir,
    )
    assert out == ["True", "True"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connection(data_dir) -> None:
    out = _run(
        """
        history.record(make_response("parent"))
        pid = os.fork()
        if pid == 0:
            before = len(opened)
            history.record(make_response("child"))
            print("child-opened", len(opened) - before, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        history.record(make_response("parent"))
        print("parent-opened", len(opened), len(history.history()))  # counted before the reader opens
        """,
        data_dir,
    )
    assert out == ["child-opened", "1", "parent-opened", "1", "3"]  # the parent kept its connection


def test_threads_share_the_writer(data_dir) -> None:
    """The kernel's thread, the client's loop thread and any worker thread all record (sweeps, panel, wm.chat)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed write only warns: make it fail the test
        history.record(make_response("main"))
        workers = [threading.Thread(target=history.record, args=(make_response(f"t{i}"),)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        history.record(make_response("main again"))
    prompts = sorted(m[0]["content"] for m in history.history()["messages"])
    assert prompts == sorted(["himain", "himain again", *(f"hit{i}" for i in range(4))])


def test_lone_surrogates_are_recorded_and_read_back(data_dir) -> None:
    """A byte-level token with a lone surrogate (protocol.md) in the logprobs, the messages and the answer: SQLite
    takes no such text, yet the exchange is kept (the JSON columns give the token back as sent)."""
    from wcode_magic.core.stream import loads

    request = {"model": "x/y", "messages": [{"role": "user", "content": "say \udce2"}], "logprobs": True}
    r = Response(request, base_url="http://127.0.0.1:1/v1")
    raw = (
        '{"id":"a","model":"x/y","choices":[{"index":0,"delta":{"content":"\\u00e2\\udce2"},"logprobs":{"content":'
        '[{"token":"\\udce2","logprob":-0.3,"bytes":[226],"top_logprobs":[{"token":"\\udce2","logprob":-0.3,'
        '"bytes":[226]}]}]}}]}'
    )
    r.feed(loads(raw), raw=raw)
    r.finish(complete=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history.record(r)
    row = wm.history().iloc[-1]
    assert row["logprobs"][0]["token"] == "\udce2" and row["logprobs"][0]["bytes"] == [226]
    assert row["logprobs"][0]["top_logprobs"][0]["token"] == "\udce2"
    assert row["messages"] == [{"role": "user", "content": "say \udce2"}]
    assert row["text"] == "\u00e2\ufffd"
