"""``wm.record`` and ``wm.replay``: the recording file's I/O and the session's recording and replay switches.

Recording is an observer of every call (wired at the package root), so wm.chat/achat, ``%%chat``, ``%wcode``, the
panel, compare and batch are all recorded. Each exchange is appended as one line with one ``write()`` to a file
opened with ``O_APPEND`` while holding an exclusive ``flock``: two kernels recording into one file never interleave
or split a line, and only the first writes the header.

Replay is asked by the client before it sends anything (``hooks.serve``): a request that matches a recorded one
(``served.request_key``) gets the recorded answers in the order they were recorded; a miss goes to the server, or
with ``strict=True`` raises ``ReplayMissError`` naming the nearest recorded request and what differs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

from ..core import hooks
from ..core.errors import InvalidParameterError, ReplayMissError
from ..core.response import Response
from ..core.served import OCCURRENCE, Served, request_key
from . import recording
from .recording import Exchange, RecordingError

try:
    import fcntl
except ImportError:  # Windows: O_APPEND alone (each line is still one write)
    fcntl = None  # type: ignore[assignment]

Pace = Literal["instant", "recorded"]
PACES = ("instant", "recorded")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wcode-magic")
    except PackageNotFoundError:
        return "0.1.0"


# -- the file --------------------------------------------------------------------------------------------------
def _path(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InvalidParameterError(
            f"{what}({path!r}): give the recording's file path (a string or Path), or None to stop.",
            param="path",
            value=path,
        )
    return Path(path).expanduser()


def _first_line(path: Path) -> str | None:
    """The header line of an existing, non-empty file; None for a missing or empty one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline() or None
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RecordingError(f"Could not read the recording {path} ({e}).") from None


def append(path: Path, line: bytes) -> None:
    """Append one line: one write, O_APPEND, under an exclusive flock; the header first if the file is new."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        data = line if os.fstat(fd).st_size else recording.header(_package_version()) + line
        view = memoryview(data)
        while view:  # a regular file takes it in one write; a short write continues, still under the lock
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)  # closing releases the lock


def load(path: Path) -> list[Exchange]:
    """Every exchange in the file; RecordingError naming the file and line that cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return recording.parse(f, str(path))
    except FileNotFoundError:
        raise RecordingError(
            f"There is no recording at {path}. Make one with wm.record({str(path)!r}) (or %wcode record PATH) while "
            "running the notebook with a key or the local model."
        ) from None
    except UnicodeDecodeError as e:
        raise RecordingError(f"{path} is not a wcode-magic recording (not UTF-8 text: {e}).") from None
    except OSError as e:
        raise RecordingError(f"Could not read the recording {path} ({e}).") from None


# -- the switches ------------------------------------------------------------------------------------------------
class _Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def note(self, response: Response) -> None:
        if response.replayed:  # it is in a recording already; a miss that went to the server is recorded
            return
        line = recording.exchange_line(response, repeat=OCCURRENCE.get())
        if line is not None:
            append(self.path, line)


class _Replayer:
    def __init__(self, path: Path, exchanges: list[Exchange], strict: bool, pace: Pace) -> None:
        self.path = path
        self.exchanges = exchanges
        self.strict = strict
        self.pace = pace
        self.by_key: dict[str, list[Exchange]] = {}
        for ex in exchanges:
            self.by_key.setdefault(ex.key, []).append(ex)
        self.left = {key: list(found) for key, found in self.by_key.items()}  # not yet replayed, in recorded order
        self.lock = threading.Lock()

    def serve(self, request: dict[str, Any]) -> Served | None:
        """The next recorded answer to this request: a compare/batch run gets the one recorded for the same run
        (runs end in any order), anything else the first not yet replayed."""
        key = request_key(request)
        repeat = OCCURRENCE.get()
        with self.lock:
            found = self.by_key.get(key, [])
            left = self.left.get(key, [])
            if left:
                ex = next((ex for ex in left if ex.repeat == repeat), left[0])
                left.remove(ex)
                return Served(
                    "replayed",
                    events=ex.events,
                    body=ex.body,
                    ttft_s=ex.ttft_s,
                    latency_s=ex.latency_s,
                    recorded_at=ex.recorded_at,
                    pace=self.pace,
                    error=ex.error,
                    stopped=ex.stopped,
                )
        if self.strict:
            raise self.miss(request, found)
        return None

    def miss(self, request: dict[str, Any], found: list[Exchange]) -> ReplayMissError:
        where = f"the recording {self.path}"
        if found:
            return ReplayMissError(
                f"This request is in {where} {len(found)} time(s) (line {found[0].line}), and every recorded answer "
                f"was already replayed; a strict replay sends nothing. Record it again (wm.record) to replay it more "
                "often, or wm.replay(path) without strict=True to send what is not recorded.",
                nearest=found[0].request,
                differences=[],
            )
        ex, diff = recording.nearest(self.exchanges, request)
        if ex is None:
            return ReplayMissError(f"{where} holds no exchanges; a strict replay sends nothing.")
        return ReplayMissError(
            f"No recorded answer for this request in {where}; a strict replay sends nothing. The nearest recorded "
            f"request (line {ex.line}) differs in: {'; '.join(diff)}. Run it as recorded, or wm.replay(path) without "
            "strict=True to send what is not recorded (and wm.record to add it).",
            nearest=ex.request,
            differences=diff,
        )


_state: dict[str, Any] = {"recorder": None, "replayer": None}


class Switch:
    """What ``wm.record`` / ``wm.replay`` return: on at once; as a context manager, off again (or back to what was
    on before) at the end of the block."""

    def __init__(self, slot: str, before: Any, what: str) -> None:
        self._slot, self._before, self._what = slot, before, what

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc: Any) -> None:
        _set(self._slot, self._before)

    def __repr__(self) -> str:
        return f"<wcode {self._what}>"


def _set(slot: str, value: Any) -> None:
    _state[slot] = value
    hooks.keep_wire(_state["recorder"] is not None)


def record(path: str | os.PathLike[str] | None) -> Switch:
    """Record every exchange from now on into the recording at ``path`` (appended; created with its header if new);
    ``record(None)`` stops. ``with wm.record(path): ...`` records the block only. Keys are never written."""
    before = _state["recorder"]
    if path is None:
        _set("recorder", None)
        return Switch("recorder", before, "recording off")
    where = _path(path, "wm.record")
    first = _first_line(where)
    if first is not None:  # appending: it must be a recording this version can write to
        recording.check_header(first, str(where))
    elif not where.parent.is_dir():
        raise RecordingError(f"Cannot record into {where}: the folder {where.parent} does not exist.")
    _set("recorder", _Recorder(where))
    return Switch("recorder", before, f"recording into {where}")


def replay(path: str | os.PathLike[str] | None, strict: bool = False, pace: Pace = "instant") -> Switch:
    """Serve every request that matches a recorded one from the recording at ``path``, repeats in recorded order.

    ``strict=True`` never touches the network: a miss raises ReplayMissError naming the nearest recorded request
    and the fields that differ. ``pace="recorded"`` streams at the recorded timing (thinking, then the answer);
    ``"instant"`` as fast as it is read. ``replay(None)`` stops; ``with wm.replay(path): ...`` replays a block.
    """
    before = _state["replayer"]
    if path is None:
        _set("replayer", None)
        return Switch("replayer", before, "replay off")
    if not isinstance(strict, bool):
        raise InvalidParameterError(f"strict={strict!r} is not allowed: strict takes True or False.", param="strict")
    if pace not in PACES:
        raise InvalidParameterError(
            f"pace={pace!r} is not allowed: pace takes 'instant' or 'recorded'.", param="pace", value=pace
        )
    where = _path(path, "wm.replay")
    _set("replayer", _Replayer(where, load(where), strict, pace))
    mode = ", strict" if strict else ""
    return Switch("replayer", before, f"replaying {where}{mode}, pace {pace}")


def recording_path() -> Path | None:
    rec = _state["recorder"]
    return rec.path if rec is not None else None


def replaying() -> tuple[Path, bool, str, int] | None:
    """(path, strict, pace, number of exchanges) of the replay that is on, or None."""
    rep = _state["replayer"]
    return None if rep is None else (rep.path, rep.strict, rep.pace, len(rep.exchanges))


def note(response: Response) -> None:
    """Client observer: append the exchange to the recording, if one is on."""
    rec = _state["recorder"]
    if rec is not None:
        rec.note(response)


def serve(request: dict[str, Any]) -> Served | None:
    """The replay's answer for ``request``, None when no replay is on or it misses (strict: ReplayMissError)."""
    rep = _state["replayer"]
    return None if rep is None else rep.serve(request)
