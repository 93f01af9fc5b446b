"""Every exchange, logged to SQLite in the user data directory, and read back as a DataFrame.

Kept like simonw/llm's log: one row per call (complete, stopped or failed) with the ``rows.response_row``
columns plus the messages sent, the logprobs and the error. Never the key: only the request body is stored, and
the key travels in a header. WAL mode lets two kernels write at once without losing a row.

The file outlives the package, so its layout carries a version (``PRAGMA user_version``) and ``MIGRATIONS``
brings an older file up to date when it is first opened for writing, as ``llm`` does: an upgrade never makes
history stop. Reading never writes (a read-only file or folder can still be read, an old file as it is).

Recording runs on the caller's thread, often right after an answer arrived, so it must be cheap and must never
wait: one connection per process is kept open for writing, and when another process holds the file's lock the
row goes to a queue that a background thread writes as soon as the lock is free (``wm.history()`` waits for it).
A write that fails for another reason (a read-only home, a full disk, a damaged file) warns once per session and
per file, then is logged at debug level only. The answer is in ``wm.last()`` and the notebook either way.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigurationError, InvalidParameterError, warn_user
from ..core.response import Response
from ..core.served import OCCURRENCE, Served, request_key
from ..core.settings import SESSION
from . import rows, stored_logprobs

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("wcode_magic.history")

_INTEGER = {"prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens", "complete", "repeat", "cached"}
_REAL = {"time", "cost", "latency_s", "ttft_s", "mean_logprob", "perplexity", "min_prob"}
_JSON = ("params", "messages", "error", "tool_calls", "reasoning_details")
_NULLABLE_TEXT = (
    "request_hash",
    "replayed",
    "served_model",
)  # None where missing (as error), whether or not some row has one  # stored as JSON text; logprobs have their own format (stored_logprobs)
EXTRA_COLUMNS = (
    "response_id",
    "messages",
    "logprobs",
    "error",
    "request_hash",
    "repeat",
    "cached",
    "replayed",
    "served_model",
    "tool_calls",
    "reasoning_details",
)
ALL_COLUMNS = (*rows.COLUMNS, *EXTRA_COLUMNS)

_CALLER_WAIT_MS = 20  # the longest a recording call waits for another process's lock before queueing the row
_WORKER_WAIT_MS = 30_000  # the background writer's wait for the lock, per attempt
_MAX_QUEUED = 10_000  # rows kept in memory while the file stays locked; beyond that the oldest are dropped
_EXIT_FLUSH_S = 30.0  # how long the interpreter's exit waits for queued rows
_READ_FLUSH_S = 10.0  # how long wm.history() waits for queued rows before reading without them


class HistoryError(ConfigurationError):
    """The history file cannot be read or written as it is: its path and what to do are in the message."""


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


# --- the schema and its migrations --------------------------------------------------------------------------------
# Each migration takes the file from version i to i + 1 and is never edited once released: a new column is a new
# migration appended at the end. Version 0 is a new file or one written by 0.1.0 (which set no version).

_COLUMNS_0_1_0 = (  # the table as release 0.1.0 created it (tests/fixtures/history-0.1.0.sqlite)
    "time REAL, model TEXT, host TEXT, params TEXT, prompt TEXT, text TEXT, reasoning TEXT, finish_reason TEXT, "
    "prompt_tokens INTEGER, completion_tokens INTEGER, reasoning_tokens INTEGER, total_tokens INTEGER, cost REAL, "
    "latency_s REAL, ttft_s REAL, mean_logprob REAL, perplexity REAL, min_prob REAL, complete INTEGER, "
    "status TEXT, response_id TEXT, messages TEXT, logprobs TEXT"
)


def _create_exchanges(conn: sqlite3.Connection) -> None:
    """1: the exchanges table, unless 0.1.0 already made it."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS exchanges (id INTEGER PRIMARY KEY AUTOINCREMENT, {_COLUMNS_0_1_0})")


def _add_error(conn: sqlite3.Connection) -> None:
    """2: the server's error object of a failed call (JSON), so the history says why a call failed."""
    conn.execute("ALTER TABLE exchanges ADD COLUMN error TEXT")


def _add_request_hash(conn: sqlite3.Connection) -> None:
    """3: the request's hash (``served.request_key``) and which repeat of it the row answered (the run of a
    compare/batch, 0 elsewhere), indexed, so ``cache=True`` finds an identical completed request without a scan;
    whether a row was served from the cache (``cached``) or a recording (``replayed``: the date it was recorded).
    Rows written before have no hash and are never served from the cache."""
    conn.execute("ALTER TABLE exchanges ADD COLUMN request_hash TEXT")
    conn.execute("ALTER TABLE exchanges ADD COLUMN repeat INTEGER")
    conn.execute("ALTER TABLE exchanges ADD COLUMN cached INTEGER")
    conn.execute("ALTER TABLE exchanges ADD COLUMN replayed TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS exchanges_request_hash ON exchanges (request_hash, repeat)")


def _add_answer_parts(conn: sqlite3.Connection) -> None:
    """4: what the server answered beside the text, so an answer served from the cache is whole: the model it
    named (``served_model``: a router may answer with another than the one asked for, which ``model`` keeps), the
    tool calls and OpenRouter's reasoning_details (JSON). Rows written before have none of them; a cached row that
    ended in tool calls without them is never served (it would come back without its calls)."""
    conn.execute("ALTER TABLE exchanges ADD COLUMN served_model TEXT")
    conn.execute("ALTER TABLE exchanges ADD COLUMN tool_calls TEXT")
    conn.execute("ALTER TABLE exchanges ADD COLUMN reasoning_details TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_exchanges,
    _add_error,
    _add_request_hash,
    _add_answer_parts,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _too_new(path: Path, version: int) -> HistoryError:
    return HistoryError(
        f"The history file {path} was written by a newer wcode-magic (layout version {version}; this one knows up "
        f"to {SCHEMA_VERSION}). Upgrade wcode-magic (pip install -U wcode-magic), or point WCODE_DATA_DIR at "
        "another folder."
    )


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file to ``SCHEMA_VERSION``: each missing migration in order, all in one transaction taken with
    the write lock first, so two kernels opening an old file at once migrate it once."""
    if _version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)  # another process may have migrated while this one waited for the lock
        if version > SCHEMA_VERSION:
            raise _too_new(path, version)
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if version < SCHEMA_VERSION:
        log.info("history %s migrated from layout version %d to %d", path, version, SCHEMA_VERSION)


def connect(path: Path | None = None, *, shared: bool = False, wait_ms: int = _WORKER_WAIT_MS) -> sqlite3.Connection:
    """Open the history database for writing: created in WAL mode if new, migrated if old. ``shared``: usable from
    any thread, for callers that serialise access themselves (the writer's lock). Transactions are explicit
    (autocommit mode), so the migration's ``BEGIN IMMEDIATE`` is the one that counts."""
    path = path or db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=wait_ms / 1000, check_same_thread=not shared, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # WAL persists in the file: set it once
            conn.execute("PRAGMA journal_mode = WAL")
        # No fsync per row: in WAL mode the file stays consistent whatever happens, and a killed kernel loses
        # nothing; only the last rows before a power cut or an OS crash may be lost. A row per call with a sync
        # each took ~4 ms on this machine's disk, most of a 1,000-run sweep answered from the cache.
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def row_for(response: Response) -> dict[str, Any]:
    """The stored row: the shared columns, the messages sent, the answer's logprobs (as stored), the response id
    and the error object of a failed call."""
    row = rows.response_row(response)
    row["response_id"] = response.id
    row["messages"] = response.request.get("messages", [])
    row["logprobs"] = stored_logprobs.dumps(response.logprob_columns("content"))
    row["error"] = response.error
    row["request_hash"] = request_key(response.request)
    row["repeat"] = OCCURRENCE.get()  # observers run in the call's own context (its task in a sweep)
    row["cached"] = int(response.cached)
    row["replayed"] = (response.recorded_at or "?") if response.replayed else None
    row["served_model"] = response.model or None
    row["tool_calls"] = response.tool_calls or None
    row["reasoning_details"] = response.reasoning_details or None
    return row


def record(response: Response) -> None:
    """Client observer: append one row (unless history is off). It never raises and never waits for a lock."""
    if not enabled():
        return
    try:
        values = _values(row_for(response))
    except Exception as e:  # a bug in building the row: the answer is still the user's
        _WRITER.failed(db_path(), e)
        return
    _WRITER.write(db_path(), values)


_CACHED_COLUMNS = (
    "time",
    "model",
    *rows.ANSWER_COLUMNS,
    *rows.TIMING_COLUMNS,
    "response_id",
    "logprobs",
    "served_model",
    "tool_calls",
    "reasoning_details",
)
# the oldest complete answer the server gave (not itself served from the cache or a recording) to the same repeat
# of the same request: the same answer however often the notebook runs, and a sweep's n runs their own n answers
_CACHED = (
    f"SELECT {', '.join(_CACHED_COLUMNS)} FROM exchanges WHERE request_hash = ? AND repeat = ? AND complete = 1 "
    "AND status = 'done' AND NOT cached AND replayed IS NULL "
    "AND (tool_calls IS NOT NULL OR finish_reason IS NOT 'tool_calls') ORDER BY id LIMIT 1"
)


def cached(request: dict[str, Any]) -> Served | None:
    """``cache=True``: the stored answer to a request identical to ``request`` (the body as sent, keys masked), as
    a non-streamed body to fold; None when there is none (or the history cannot be read: then it is sent)."""
    path = db_path()
    if not path.exists():
        return None
    with _WRITER.lock:
        try:
            conn = _WRITER.connection(path, _CALLER_WAIT_MS)
            found = conn.execute(_CACHED, (request_key(request), OCCURRENCE.get())).fetchone()
        except (sqlite3.Error, HistoryError) as e:
            _WRITER.close()
            log.info("cache: could not read %s (%s); the request is sent", path, e)
            return None
    if found is None:
        return None
    row = dict(zip(_CACHED_COLUMNS, found, strict=True))
    message: dict[str, Any] = {"role": "assistant", "content": row["text"] or ""}
    if row["reasoning"]:
        message["reasoning"] = row["reasoning"]
    for part in ("tool_calls", "reasoning_details"):
        if row[part]:
            message[part] = json.loads(row[part])
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": row["finish_reason"]}
    entries = stored_logprobs.loads(row["logprobs"])
    if entries:
        choice["logprobs"] = {"content": entries}
    usage: dict[str, Any] = {
        k: row[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens") if row[k] is not None
    }
    if row["reasoning_tokens"] is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": row["reasoning_tokens"]}
    model = row["served_model"] or row["model"]  # the model the server named (rows before layout 4: the one asked)
    body = {"id": row["response_id"], "object": "chat.completion", "model": model, "choices": [choice]}
    if usage:
        body["usage"] = usage
    return Served(
        "cached",
        body=json.dumps(body, ensure_ascii=False),
        ttft_s=row["ttft_s"],
        latency_s=row["latency_s"],
        recorded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row["time"])) if row["time"] else None,
    )


def flush(timeout: float = _READ_FLUSH_S) -> int:
    """Wait up to ``timeout`` seconds for rows queued behind another process's lock; the number still queued."""
    return _WRITER.flush(timeout)


_INSERT = f"INSERT INTO exchanges ({', '.join(ALL_COLUMNS)}) VALUES ({', '.join('?' * len(ALL_COLUMNS))})"


def _is_lock(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _explain(path: Path, error: BaseException, *, reading: bool = False) -> str:
    """What a failed history write or read means for the user, with what to do."""
    if isinstance(error, HistoryError):
        return error.message
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
        return (
            f"The history file {path} is damaged or is not a history database ({error}). Move it aside or delete "
            "it and wcode-magic starts a new one there; or set WCODE_DATA_DIR to another folder."
        )
    if reading:
        return f"Could not read the history file {path} ({error}). Check that it exists and can be read."
    return (
        f"Could not write the history to {path} ({error}). Answers are not being logged; they are still in "
        "wm.last() and the notebook. Fix the folder (space, permissions), set WCODE_DATA_DIR to another folder, or "
        "turn history off with %wcode set history=off."
    )


class _Writer:
    """The process's one writing connection, the file it was opened on, and the rows queued behind a lock."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start afresh without touching the connection: after a fork it is the parent's to use and close, and its
        queue is the parent's to write."""
        self.lock = threading.Lock()
        self.idle = threading.Condition(threading.Lock())
        self.conn: sqlite3.Connection | None = None
        self.opened_on: tuple[Path, int, int] | None = None
        self.queue: collections.deque[tuple[Path, list[Any]]] = collections.deque()
        self.worker: threading.Thread | None = None
        self.warned: set[Path] = set()

    # the caller's side ------------------------------------------------------------------------------------------
    def write(self, path: Path, values: list[Any]) -> None:
        """Insert now if the file is free within a few milliseconds; otherwise queue the row for the worker.
        Rows already queued go first, so the history keeps the order the calls ended in."""
        with self.idle:
            if self.queue:
                self._enqueue(path, values)
                return
        with self.lock:
            try:
                conn = self.connection(path, _CALLER_WAIT_MS)
                conn.execute(_INSERT, values)
                return
            except sqlite3.OperationalError as e:
                if not _is_lock(e):
                    self.close()  # a broken connection (disk full, file gone) is not reused
                    self.failed(path, e)
                    return
                log.debug("history %s is locked by another process; the row is queued", path)
            except Exception as e:
                self.close()
                self.failed(path, e)
                return
        with self.idle:
            self._enqueue(path, values)

    def failed(self, path: Path, error: BaseException) -> None:
        """Warn once per session and file; later failures only go to the log."""
        message = _explain(path, error)
        if path in self.warned:
            log.debug("%s", message)
            return
        self.warned.add(path)
        log.warning("%s", message)
        warn_user(message)

    def _enqueue(self, path: Path, values: list[Any]) -> None:
        """Called holding ``idle``."""
        if len(self.queue) >= _MAX_QUEUED:
            self.queue.popleft()
            log.warning("history %s: more than %d rows waited for its lock; the oldest was dropped", path, _MAX_QUEUED)
        self.queue.append((path, values))
        if self.worker is None or not self.worker.is_alive():
            self.worker = threading.Thread(target=self._drain, name="wcode-magic-history", daemon=True)
            self.worker.start()

    def flush(self, timeout: float) -> int:
        with self.idle:
            self.idle.wait_for(lambda: not self.queue, timeout=timeout)
            return len(self.queue)

    # the worker's side ------------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Write the queued rows in order on the worker's own connection, waiting as long as the lock is held."""
        conns: dict[Path, sqlite3.Connection] = {}
        delay = 0.05
        try:
            while True:
                with self.idle:
                    if not self.queue:
                        self.idle.notify_all()
                        return
                    path, values = self.queue[0]
                try:
                    conn = conns.get(path) or conns.setdefault(path, connect(path))
                    conn.execute(_INSERT, values)
                except sqlite3.OperationalError as e:
                    if _is_lock(e):
                        log.debug("history %s still locked; trying again in %.2f s", path, delay)
                        time.sleep(delay)
                        delay = min(delay * 2, 2.0)
                        continue
                    self._give_up(path, e, conns)
                except Exception as e:
                    self._give_up(path, e, conns)
                else:
                    delay = 0.05
                    with self.idle:
                        self.queue.popleft()
        finally:
            for conn in conns.values():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def _give_up(self, path: Path, error: BaseException, conns: dict[Path, sqlite3.Connection]) -> None:
        """A queued row that cannot be written for another reason than the lock: logged (the caller warned, or
        will be told by the next write), and dropped so the rows behind it still get written."""
        log.warning("%s", _explain(path, error))
        with contextlib.suppress(sqlite3.Error, AttributeError):
            conns.pop(path).close()
        with self.idle:
            self.queue.popleft()

    # the connection -----------------------------------------------------------------------------------------------
    def connection(self, path: Path, wait_ms: int) -> sqlite3.Connection:
        """The open connection for ``path``, reopened when ``path`` changed or is no longer the same file."""
        if self.conn is not None and self._identity(path) == self.opened_on:
            return self.conn
        self.close()
        conn = connect(path, shared=True, wait_ms=wait_ms)  # the kernel's thread and the client loop's both record
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
    """Rows still queued get up to ``_EXIT_FLUSH_S`` seconds to be written; the count of any left is logged."""
    if left := _WRITER.flush(_EXIT_FLUSH_S):
        log.warning("history: %d rows could not be written before exit (the file stayed locked)", left)
    with _WRITER.lock:
        _WRITER.close()


def _values(row: dict[str, Any]) -> list[Any]:
    values = [_storable(row[c], c in _JSON) for c in ALL_COLUMNS]
    values[ALL_COLUMNS.index("complete")] = int(bool(row["complete"]))
    return values


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


def _reader(path: Path) -> sqlite3.Connection:
    """A connection that never writes: read-only, and on a folder where SQLite cannot even make the WAL's shared
    memory file (a read-only mount), the file opened as immutable."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.Error as e:
        conn.close()
        if not isinstance(e, sqlite3.OperationalError) or ("unable to open" not in str(e) and "readonly" not in str(e)):
            raise
        log.debug("history %s: read-only open failed (%s); reading it as immutable", path, e)
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _check_n(n: Any) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidParameterError(
            f"wm.history(n): n must be a whole number of exchanges, 0 or more, or None for all; got {n!r}.",
            param="n",
            value=n,
        )
    return n


def history(n: int | None = None) -> pd.DataFrame:
    """The last ``n`` exchanges (all without ``n``), oldest first; params, messages, logprobs and error as Python
    objects. Rows still queued behind another process's lock are waited for (up to 10 s, then a warning)."""
    import pandas as pd

    n = _check_n(n)
    path = db_path()
    if left := flush():
        warn_user(
            f"{left} exchanges are still waiting for the lock on {path} (another process is writing); "
            "they are not in this table yet."
        )
    names = ["id", *ALL_COLUMNS]
    records: list[tuple[Any, ...]] = []
    if path.exists():
        try:
            records = _read(path, n)
        except sqlite3.Error as e:
            raise HistoryError(_explain(path, e, reading=True)) from None
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for record in reversed(records):
        for name, value in zip(names, record, strict=True):
            if name == "logprobs":
                value = stored_logprobs.loads(value)
            elif name in _JSON and value is not None:
                value = json.loads(value)
            columns[name].append(value)
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) if k in _NULLABLE_TEXT else v for k, v in columns.items()})
    frame["time"] = pd.to_datetime(frame["time"], unit="s")
    frame["complete"] = frame["complete"].astype(bool)
    frame["cached"] = frame["cached"].fillna(0).astype(bool)
    frame["repeat"] = frame["repeat"].astype("Int64")  # <NA> for rows written before it was kept
    return frame


def _read(path: Path, n: int | None) -> list[tuple[Any, ...]]:
    """The newest ``n`` rows, every column of ``ALL_COLUMNS`` (None where an older file lacks one)."""
    conn = _reader(path)
    try:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise _too_new(path, version)
        present = {row[1] for row in conn.execute("PRAGMA table_info(exchanges)")}
        if not present:
            return []  # created but never written to
        selected = ", ".join(c if c in present else f"NULL AS {c}" for c in ("id", *ALL_COLUMNS))
        query = f"SELECT {selected} FROM exchanges ORDER BY id DESC"
        return conn.execute(query + (" LIMIT ?" if n is not None else ""), (() if n is None else (n,))).fetchall()
    finally:
        conn.close()
