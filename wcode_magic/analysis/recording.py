"""The recording file's format, pure: a Response to a line, lines back to exchanges, and how requests match.

A recording is one UTF-8 text file in JSON Lines, one object per line, so a diff shows which exchange changed:

- line 1, the header: ``{"wcode_recording": 1, "package": "0.1.0", "created": "2026-12-07T12:00:00Z"}``;
- every further line, one exchange: ``{"recorded_at", "request", "model", "status", "ttft_s", "latency_s",
  "events": [[seconds, data], ...]}`` (and ``"repeat"``, the run of a compare or batch it answered, when not 0),
  the stream's SSE data fields as sent (``[DONE]`` included) with the seconds
  from the request to each, enough to stream it again at its pace; or ``"body"``, the text of a non-streamed
  answer, instead of ``events``. An exchange that did not end in an answer says how it ended: ``"error"``, the
  exception it raised (``{"class", "status", "message", "body", "partial"}``, plus ``retry_after`` or ``param``:
  ``errors.describe``; the server's address in it written as ``{base_url}``), with the events that arrived before it (none for an error status); or ``"stopped": true``
  when the user stopped it. A replay folds the events and ends the same way. (Format 1 still: a file without
  these keys reads as before, and an older reader ignores them.)

The request is the body as sent, keys masked (``Response.request``): never headers, never the key, never base_url.
Every event and body is masked too (``Response.scrub``); an answer that echoed a key (perhaps split over many
pieces) is kept as one masked body instead of its pieces. The file I/O is in ``recorder``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..core.errors import ConfigurationError
from ..core.response import Response
from ..core.served import BASE_URL, matched_part, request_key, swap_text

FORMAT_VERSION = 1
MAGIC = "wcode_recording"


class RecordingError(ConfigurationError):
    """A recording file that cannot be read as it is: which file, which line, and what to do."""


@dataclass
class Exchange:
    """One recorded exchange, as read back."""

    line: int
    request: dict[str, Any]
    key: str
    recorded_at: str | None
    events: list[tuple[float, str]]
    body: str | None
    ttft_s: float | None
    latency_s: float | None
    repeat: int = 0  # which run of a compare/batch it answered (0 elsewhere)
    error: dict[str, Any] | None = None  # how a failed exchange ended (errors.describe)
    stopped: bool = False  # the user stopped it


def now_iso(when: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


def header(package_version: str, when: float | None = None) -> bytes:
    """The first line of a new recording."""
    doc = {MAGIC: FORMAT_VERSION, "package": package_version, "created": now_iso(when)}
    return json.dumps(doc).encode() + b"\n"


def exchange_line(response: Response, when: float | None = None, repeat: int = 0) -> bytes | None:
    """One exchange as a line (ending in a newline), keys masked: every exchange, answered, failed (an error
    status, no connection, a broken stream: the error it raised) or stopped; None only for a call that neither
    answered nor says how it ended."""
    ending: dict[str, Any] = {}
    if response.stopped:
        ending["stopped"] = True
    elif response.failure is not None:
        ending["error"] = swap_text(response.scrub(response.failure), response.base_url, BASE_URL)
    wire, body = response.wire, response.wire_body
    if response.echoed_key() or (not wire and body is None):
        if response.text or response.reasoning or response.complete:
            wire, body = None, json.dumps(response.scrub(response.raw), ensure_ascii=False)
        elif not ending:
            return None
    doc: dict[str, Any] = {
        "recorded_at": response.recorded_at or now_iso(when),
        "request": response.request,  # masked already
        "model": response.model,
        "status": response.status,
        "ttft_s": _rounded(response.ttft_s),
        "latency_s": _rounded(response.latency_s),
    }
    if repeat:
        doc["repeat"] = repeat
    if body is not None:
        doc["body"] = response.scrub(body)
    else:
        doc["events"] = [[round(at, 4), response.scrub(data)] for at, data in wire or ()]
    doc.update(ending)
    return orjson.dumps(doc, default=str) + b"\n"


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def check_header(first: str, name: str) -> dict[str, Any]:
    """The header line's object; RecordingError when the file is no recording or needs a newer wcode-magic."""
    try:
        doc = json.loads(first)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or MAGIC not in doc:
        raise RecordingError(
            f"{name} is not a wcode-magic recording (line 1 is not its header). Give the path of a file made by "
            "wm.record(path) or %wcode record PATH."
        )
    version = doc[MAGIC]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingError(f"{name}, line 1: the header's format version {version!r} is not one wcode-magic wrote.")
    if version > FORMAT_VERSION:
        made_by = doc.get("package")
        by = f" by wcode-magic {made_by}" if isinstance(made_by, str) else ""
        raise RecordingError(
            f"{name} was written{by} in recording format {version}; this wcode-magic reads format "
            f"{FORMAT_VERSION} only. Upgrade wcode-magic (pip install -U wcode-magic"
            + (f">={made_by}" if isinstance(made_by, str) else "")
            + ") to replay it."
        )
    return doc


def parse(lines: Iterable[str], name: str) -> list[Exchange]:
    """Every exchange of a recording's lines; RecordingError naming the first line that cannot be read."""
    exchanges: list[Exchange] = []
    seen_header = False
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if not seen_header:
            check_header(text, name)
            seen_header = True
            continue
        exchanges.append(_exchange(text, number, name))
    if not seen_header:
        raise RecordingError(f"{name} is empty: it holds no recording header, so nothing was ever recorded in it.")
    return exchanges


def _corrupt(name: str, number: int, why: str) -> RecordingError:
    return RecordingError(
        f"{name}, line {number}: {why}. The file is truncated or was edited by hand; delete that line (or record "
        "the exchange again) to replay the rest."
    )


def _exchange(text: str, number: int, name: str) -> Exchange:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise _corrupt(name, number, f"not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _corrupt(name, number, "not a JSON object")
    request = doc.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("model"), str):
        raise _corrupt(name, number, "it has no request with a model")
    events = doc.get("events")
    body = doc.get("body")
    if body is not None and not isinstance(body, str):
        raise _corrupt(name, number, "its body is not text")
    if body is None:
        if not isinstance(events, list):
            raise _corrupt(name, number, "it has neither events nor a body")
        for event in events:
            if not (
                isinstance(event, list)
                and len(event) == 2
                and isinstance(event[0], (int, float))
                and not isinstance(event[0], bool)
                and isinstance(event[1], str)
            ):
                raise _corrupt(name, number, f"an event is not [seconds, data]: {_short(event)}")
    timings = []
    for field in ("ttft_s", "latency_s"):
        value = doc.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _corrupt(name, number, f"{field} is not a number of seconds: {_short(value)}")
        timings.append(value)
    when = doc.get("recorded_at")
    repeat = doc.get("repeat", 0)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
        raise _corrupt(name, number, f"repeat is not a run number: {_short(repeat)}")
    error = doc.get("error")
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("class"), str) and isinstance(error.get("message"), str)
    ):
        raise _corrupt(name, number, f"its error is not {{class, message, ...}}: {_short(error)}")
    stopped = doc.get("stopped", False)
    if not isinstance(stopped, bool):
        raise _corrupt(name, number, f"stopped is not true or false: {_short(stopped)}")
    return Exchange(
        line=number,
        request=request,
        key=request_key(request),
        recorded_at=when if isinstance(when, str) else None,
        events=[] if body is not None else [(float(t), data) for t, data in events or ()],
        body=body,
        ttft_s=timings[0],
        latency_s=timings[1],
        repeat=repeat,
        error=error,
        stopped=stopped,
    )


# -- matching ---------------------------------------------------------------------------------------------------
def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def differences(recorded: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The fields in which two requests differ, as ``"temperature: recorded 0.7, asked 0.2"`` (stream flags aside)."""
    a, b = matched_part(recorded), matched_part(asked)
    out = []
    for field in sorted(set(a) | set(b), key=lambda f: (f not in ("model", "messages"), f)):
        if field == "messages" and isinstance(a.get(field), list) and isinstance(b.get(field), list):
            out.extend(_message_differences(a[field], b[field]))
            continue
        if a.get(field) != b.get(field):
            was = _short(a[field]) if field in a else "not set"
            now = _short(b[field]) if field in b else "not set"
            out.append(f"{field}: recorded {was}, asked {now}")
    return out


def _message_differences(recorded: list[Any], asked: list[Any]) -> list[str]:
    """Where two conversations part: their lengths, or the first message (and field) that differs."""
    if len(recorded) != len(asked):
        return [f"messages: recorded {len(recorded)} messages, asked {len(asked)}"]
    for i, (was, now) in enumerate(zip(recorded, asked, strict=True)):
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            for field in sorted(set(was) | set(now)):
                if was.get(field) != now.get(field):
                    before = _short(was[field]) if field in was else "not set"
                    after = _short(now[field]) if field in now else "not set"
                    return [f"messages[{i}].{field}: recorded {before}, asked {after}"]
        return [f"messages[{i}]: recorded {_short(was)}, asked {_short(now)}"]
    return []


def nearest(exchanges: list[Exchange], asked: dict[str, Any]) -> tuple[Exchange | None, list[str]]:
    """The recorded exchange whose request differs from ``asked`` in the fewest fields, and those fields."""
    best: tuple[Exchange | None, list[str]] = (None, [])
    seen: set[str] = set()
    for ex in exchanges:
        if ex.key in seen:
            continue
        seen.add(ex.key)
        diff = differences(ex.request, asked)
        if best[0] is None or len(diff) < len(best[1]):
            best = (ex, diff)
    return best
