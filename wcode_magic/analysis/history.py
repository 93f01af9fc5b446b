"""Every exchange, logged to SQLite in the user data directory, and read back as a DataFrame.

Kept like simonw/llm's log: one row per call (complete, stopped or failed) with the ``rows.response_row``
columns plus the messages sent and the logprobs. Never the key: only the request body is stored, and the key
travels in a header. WAL mode and a busy timeout let two kernels write at once without losing a row.

Recording runs on the caller's thread, often the event loop (panel, sweeps), so it must be cheap: one connection
per process is kept open for writing (opening one, setting it up and closing it, which checkpoints the WAL, cost
several times the insert itself). A lock serialises the threads that share it (kernel, client loop); it is
reopened when the path changes, the file is replaced, or the process has forked, and closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import WcodeWarning
from ..core.response import Response
from ..core.settings import SESSION
from . import rows, stored_logprobs

if TYPE_CHECKING:
    import pandas as pd

_INTEGER = {"prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens", "complete"}
_REAL = {"time", "cost", "latency_s", "ttft_s", "mean_logprob", "perplexity", "min_prob"}
_JSON = ("params", "messages")  # stored as JSON text; logprobs have their own format (stored_logprobs)
EXTRA_COLUMNS = ("response_id", "messages", "logprobs")
_ATTEMPTS = 6
ALL_COLUMNS = (*rows.COLUMNS, *EXTRA_COLUMNS)


def data_dir() -> Path:
    """``WCODE_DATA_DIR`` or the platform's user data directory."""
    override = os.environ.get("WCODE_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("wcode-magic", appauthor=False))


def db_path() -> Path:
    return data_dir() / "history.sqlite"


def enabled() -> bool:
    """Off with ``WCODE_HISTORY=off`` (or 0/false/no) or ``%wcode set history=off``."""
    env = os.environ.get("WCODE_HISTORY", "").strip().lower()
    return env not in ("off", "0", "false", "no") and SESSION.history


def _column_type(name: str) -> str:
    return "INTEGER" if name in _INTEGER else "REAL" if name in _REAL else "TEXT"


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exchanges (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{c} {_column_type(c)}" for c in ALL_COLUMNS)
    + ")"
)


def connect(path: Path | None = None, *, shared: bool = False) -> sqlite3.Connection:
    """Open the history database (created, in WAL mode, if new); ``shared``: usable from any thread, for callers
    that serialise access themselves (the writer's lock)."""
    path = path or db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, check_same_thread=not shared)
    conn.execute("PRAGMA busy_timeout = 30000")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # WAL persists in the file: set it once
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(_SCHEMA)
    return conn


def row_for(response: Response) -> dict[str, Any]:
    """The stored row: the shared columns, the messages sent, the answer's logprobs (as stored), the response id."""
    row = rows.response_row(response)
    row["response_id"] = response.id
    row["messages"] = response.request.get("messages", [])
    row["logprobs"] = stored_logprobs.dumps(response.logprob_columns("content"))
    return row


def record(response: Response) -> None:
    """Client observer: append one row (unless history is off). A failure warns, it never breaks a chat."""
    try:
        if enabled():
            _insert(row_for(response))
    except Exception as e:  # a full disk or a read-only home must not cost the user the answer
        warnings.warn(f"Could not write the history to {db_path()} ({e}).", WcodeWarning, stacklevel=2)


_INSERT = f"INSERT INTO exchanges ({', '.join(ALL_COLUMNS)}) VALUES ({', '.join('?' * len(ALL_COLUMNS))})"


class _Writer:
    """The process's one writing connection and the file it was opened on (path, device, inode)."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start afresh without touching the connection: after a fork it is the parent's to use and close."""
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.opened_on: tuple[Path, int, int] | None = None

    def connection(self, path: Path) -> sqlite3.Connection:
        """The open connection for ``path``, reopened when ``path`` changed or is no longer the same file."""
        if self.conn is not None and self._identity(path) == self.opened_on:
            return self.conn
        self.close()
        conn = connect(path, shared=True)  # the kernel's thread and the client loop's thread both record
        self.conn, self.opened_on = conn, self._identity(path)
        return conn

    @staticmethod
    def _identity(path: Path) -> tuple[Path, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None  # deleted: reopen, which creates it again
        return (path, st.st_dev, st.st_ino)

    def close(self) -> None:
        conn, self.conn, self.opened_on = self.conn, None, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


_WRITER = _Writer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WRITER.forget)


@atexit.register
def _close_writer() -> None:
    with _WRITER.lock:
        _WRITER.close()


def _storable(value: Any, is_json: bool) -> Any:
    """A column's value as SQLite takes it: text it can encode as UTF-8.

    A lone surrogate (a byte-level token some servers send, protocol.md) cannot be: JSON columns then escape it
    (``\\udcxx``, read back as the same character) and plain text gets U+FFFD in its place.
    """
    if is_json and value is not None:
        text = json.dumps(value, ensure_ascii=False)
        return text if _encodable(text) else json.dumps(value, ensure_ascii=True)
    if isinstance(value, str) and not _encodable(value):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _insert(row: dict[str, Any]) -> None:
    values = [_storable(row[c], c in _JSON) for c in ALL_COLUMNS]
    values[ALL_COLUMNS.index("complete")] = int(bool(row["complete"]))
    path = db_path()
    with _WRITER.lock:
        for attempt in range(_ATTEMPTS):
            try:
                conn = _WRITER.connection(path)
                with conn:
                    conn.execute(_INSERT, values)
                return
            except sqlite3.OperationalError as e:
                # switching a new file to WAL is not covered by the busy timeout: two kernels creating the file at
                # once can see "database is locked" once; try again shortly
                if "locked" not in str(e) or attempt == _ATTEMPTS - 1:
                    _WRITER.close()  # a broken connection (disk full, file gone) is not reused
                    raise
                time.sleep(0.05 * 2**attempt)
            except sqlite3.Error:
                _WRITER.close()
                raise


def history(n: int | None = None) -> pd.DataFrame:
    """The last ``n`` exchanges (all without ``n``), oldest first; params, messages and logprobs as Python objects."""
    import pandas as pd

    path = db_path()
    if not path.exists():
        return pd.DataFrame(columns=["id", *ALL_COLUMNS])
    conn = connect(path)
    try:
        query = f"SELECT id, {', '.join(ALL_COLUMNS)} FROM exchanges ORDER BY id DESC"
        cursor = conn.execute(query + (" LIMIT ?" if n is not None else ""), (() if n is None else (int(n),)))
        records = cursor.fetchall()
    finally:
        conn.close()
    names = ["id", *ALL_COLUMNS]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for record in reversed(records):
        for name, value in zip(names, record, strict=True):
            if name == "logprobs":
                value = stored_logprobs.loads(value)
            elif name in _JSON and value is not None:
                value = json.loads(value)
            columns[name].append(value)
    frame = pd.DataFrame(columns)
    frame["time"] = pd.to_datetime(frame["time"], unit="s")
    frame["complete"] = frame["complete"].astype(bool)
    return frame
