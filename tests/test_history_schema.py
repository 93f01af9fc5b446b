"""History across upgrades and bad days: the layout version and its migrations (a file written by release 0.1.0,
committed before the layout changed), a write that waits for no lock, failures that warn once, damaged and
read-only files, and ``wm.history(n)``'s argument. Calls go over HTTP to the bundled local model."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

import wcode_magic as wm
from wcode_magic.analysis import history
from wcode_magic.core import errors

FIXTURE = Path(__file__).parent / "fixtures" / "history-0.1.0.sqlite"


@pytest.fixture
def data_dir(tmp_path, monkeypatch, session):
    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WCODE_HISTORY", raising=False)
    history._WRITER.warned.clear()
    return tmp_path


def ask(local_url: str, prompt: str, **kw) -> wm.Response:
    return wm.chat(prompt, model="local/ngram", base_url=local_url, max_tokens=6, seed=1, **kw)


def version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_file_written_by_0_1_0_is_read_then_migrated_and_written(data_dir, local_url) -> None:
    db = data_dir / "history.sqlite"
    shutil.copy(FIXTURE, db)
    assert version(db) == 0
    old = wm.history()  # reading an old file needs no migration and changes nothing
    assert version(db) == 0
    assert list(old["prompt"]) == ["Tell me about rivers.", "What is a star?"]
    assert old["text"].iloc[0].startswith(" over millions of years")
    assert [e["token"] for e in old["logprobs"].iloc[0]][:2] and len(old["logprobs"].iloc[0][0]["top_logprobs"]) == 3
    assert old["error"].isna().all() and old["params"].iloc[1]["temperature"] == 0.5

    new = ask(local_url, "and the moon?")
    assert version(db) == history.SCHEMA_VERSION == len(history.MIGRATIONS)
    frame = wm.history()
    assert list(frame["prompt"]) == ["Tell me about rivers.", "What is a star?", "and the moon?"]
    assert frame["text"].iloc[-1] == new.text and frame["error"].iloc[-1] is None
    assert frame.drop(columns=["error"]).iloc[:2].equals(old.drop(columns=["error"]))  # the old rows as they were


def test_migrating_twice_or_from_two_connections_is_one_migration(data_dir) -> None:
    db = data_dir / "history.sqlite"
    shutil.copy(FIXTURE, db)
    first, second = history.connect(db), history.connect(db)  # the second finds it done
    for conn in (first, second):
        conn.close()
    columns = [row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(exchanges)")]
    assert columns == ["id", *history.ALL_COLUMNS] and version(db) == history.SCHEMA_VERSION


def test_a_failed_call_keeps_its_error_in_the_history(data_dir, local_url) -> None:
    with pytest.raises(errors.StreamError):
        ask(local_url, "hi", headers={"X-Wcode-Fault": "error_after=2"})
    row = wm.history(1).iloc[0]
    assert row["status"] == "error" and row["text"] and "message" in row["error"]


def test_a_file_from_a_newer_release_is_left_alone_with_one_warning(data_dir, local_url) -> None:
    db = data_dir / "history.sqlite"
    shutil.copy(FIXTURE, db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.warns(
        wm.WcodeWarning,
        match=rf"newer wcode-magic \(layout version 99; this one knows up to {history.SCHEMA_VERSION}\)",
    ):
        answer = ask(local_url, "one")
    assert answer.complete  # the answer is the user's whatever happens to the history
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per session: a second failure says nothing
        ask(local_url, "two")
    with pytest.raises(history.HistoryError, match="newer wcode-magic"):
        wm.history()
    assert version(db) == 99 and sqlite3.connect(db).execute("SELECT count(*) FROM exchanges").fetchone()[0] == 2


def test_an_unwritable_history_warns_once_per_session_and_logs_the_rest(tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WCODE_DATA_DIR", str(blocker / "sub"))
    history._WRITER.warned.clear()
    caplog.set_level(logging.DEBUG, logger="wcode_magic")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            history.record(_response())
    texts = [str(w.message) for w in seen if issubclass(w.category, wm.WcodeWarning)]
    assert len(texts) == 1 and "Could not write the history" in texts[0] and "history=off" in texts[0]
    levels = [r.levelname for r in caplog.records if r.name.startswith("wcode_magic")]
    assert levels == ["WARNING", "DEBUG", "DEBUG"]


def test_a_damaged_file_names_itself_and_what_to_do(data_dir, local_url) -> None:
    db = data_dir / "history.sqlite"
    db.write_bytes(b"this is not an SQLite database, just bytes " * 200)
    with pytest.warns(wm.WcodeWarning, match="is damaged or is not a history database.*Move it aside"):
        assert ask(local_url, "hi").complete
    with pytest.raises(history.HistoryError) as info:
        wm.history()
    assert str(db) in info.value.message and "Move it aside or delete it" in info.value.message
    db.rename(data_dir / "moved-aside.sqlite")  # what the message says to do
    ask(local_url, "after")
    assert list(wm.history()["prompt"]) == ["after"]


def test_a_locked_file_never_holds_the_answer_back_and_keeps_the_row(data_dir, local_url) -> None:
    ask(local_url, "before")  # the file exists, in WAL mode, with the writer's connection open
    holder = sqlite3.connect(data_dir / "history.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another kernel in the middle of a long write
    answers: list[wm.Response] = []
    caller = threading.Thread(target=lambda: answers.extend([ask(local_url, "first"), ask(local_url, "second")]))
    caller.start()
    caller.join(timeout=60)
    try:
        assert not caller.is_alive() and len(answers) == 2, "the calls waited for the history's lock"
        assert len(history._WRITER.queue) == 2  # both rows kept, in order, while the lock is held
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert list(wm.history()["prompt"]) == ["before", "first", "second"]  # reading waits for the queue
    assert not history._WRITER.queue


def test_rows_queued_when_the_process_exits_are_written_once_the_lock_is_free(data_dir, local_url) -> None:
    ask(local_url, "before")
    holder = sqlite3.connect(data_dir / "history.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_history_schema import _response
        from wcode_magic.analysis import history
        for i in range(3):
            history.record(_response(str(i)))
        print(len(history._WRITER.queue), flush=True)
        """
    )
    env = {**os.environ, "WCODE_DATA_DIR": str(data_dir)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "3"  # queued, the script has ended
    holder.execute("COMMIT")
    holder.close()
    assert child.wait(timeout=60) == 0
    assert list(wm.history()["prompt"]) == ["before", "hi0", "hi1", "hi2"]


def _read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` cannot be written: a read-only bind mount in a mount namespace of
    its own when running as root (permissions bind no root), the folder's permissions otherwise."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    probe = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "sh", "-c", probe]).returncode != 0:
        pytest.skip("running as root without mount namespaces (unshare -m): no way to make a folder read-only")
    return ["unshare", "-m", "sh", "-c", probe + ' && exec "$0" "$@"']


def test_a_read_only_history_is_still_read(data_dir, local_url) -> None:
    """A folder nobody may write to (a read-only mount, a shared course folder): SQLite cannot even create the
    WAL's side files there, yet the history reads, and a call there still answers, with one warning."""
    ask(local_url, "kept")
    history._WRITER.close()  # the writer's connection closes, checkpointing the WAL into the file
    frozen = data_dir / "frozen"
    frozen.mkdir()
    shutil.copy(data_dir / "history.sqlite", frozen / "history.sqlite")
    script = textwrap.dedent(
        f"""
        import warnings
        import wcode_magic as wm
        print(list(wm.history()["prompt"]))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = wm.chat("hi", model="local/ngram", base_url={local_url!r}, max_tokens=3)
        print(r.complete, [str(w.message)[:27] for w in seen])
        """
    )
    env = {**os.environ, "WCODE_DATA_DIR": str(frozen)}
    done = subprocess.run(
        [*_read_only(frozen), sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['kept']", "True ['Could not write the history']"]
    assert sorted(p.name for p in frozen.iterdir()) == ["history.sqlite"]  # nothing was written there


@pytest.mark.parametrize("n", [-1, 1.5, "3", True])
def test_a_bad_n_is_named(data_dir, n) -> None:
    with pytest.raises(errors.InvalidParameterError, match=r"wm.history\(n\): n must be a whole number") as info:
        wm.history(n)
    assert info.value.param == "n" and repr(n) in info.value.message


def test_zero_and_none(data_dir, local_url) -> None:
    ask(local_url, "a")
    assert len(wm.history(0)) == 0 and len(wm.history(None)) == 1 and len(wm.history(5)) == 1


def _response(suffix: str = "") -> wm.Response:
    """A finished Response as the client builds it, for the tests that record without a server (subprocesses)."""
    from test_history import make_response

    return make_response(suffix)
