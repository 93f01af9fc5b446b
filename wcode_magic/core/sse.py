"""Server-sent events framing: bytes in, events out, as the WHATWG event-stream rules say. Pure, no I/O.

Our own decoder rather than httpx-sse: an adapter around that library's internals broke at its declared minimum
version (every stream raised AttributeError on 0.4.0 and 0.4.1), and owning the ~80 lines keeps the per-chunk cost
in our hands (it is benchmarked). ``SSEDecoder.feed`` takes the body's bytes as they arrive, cut anywhere, and
returns the events completed so far; ``finish`` ends the stream and dispatches an event that had no blank line
after it (``data: [DONE]`` at EOF, protocol.md), which the standard would drop.

Lines end in ``\\r\\n``, ``\\n`` or ``\\r`` (a ``\\r\\n`` may be split between two reads); lines are split on bytes
and decoded per event, which is safe because no UTF-8 sequence contains a newline byte.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event: ``data`` joins its ``data:`` lines with ``\\n``. ``id`` and ``retry`` belong to the
    stream, not the event (the standard's last event id and reconnection time): the latest seen so far."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


_new = tuple.__new__  # builds an event without the Python-level __new__ NamedTuple adds (one frame per event)


class SSEDecoder:
    """Incremental event-stream decoder: ``feed(chunk) -> [events]`` for each read, then ``finish()`` at EOF."""

    def __init__(self) -> None:
        self._tail = b""  # the last line, not yet ended
        self._data: list[bytes] = []  # the data lines of the event being read
        self._event = b""
        self._retry: int | None = None
        self._last_id = ""
        self._after_cr = False  # the previous read ended in \r: a \n opening the next one ends the same line
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that ``chunk`` completes (often one: servers write one event per read)."""
        if (
            chunk[:6] == b"data: "
            and chunk.find(b"\n", 6) == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and not (self._tail or self._data or self._event or self._after_cr)
            and self._started
            and b"\r" not in chunk
        ):  # the common read, one whole ``data: ...\n\n`` event and nothing pending: skip the line machinery
            return [
                _new(ServerSentEvent, (chunk[6:-2].decode("utf-8", "replace"), "message", self._last_id, self._retry))
            ]
        if not chunk:
            return []
        if not self._started:  # a byte-order mark may open the stream, even cut across reads
            chunk, self._tail = self._tail + chunk, b""
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._tail = chunk
                return []
            self._started = True
            chunk = chunk.removeprefix(_BOM)
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = False
        if b"\r" in chunk:  # rare: normalise to \n once per read rather than test every line
            self._after_cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._tail += chunk
            return []
        lines = (self._tail + chunk).split(b"\n") if self._tail else chunk.split(b"\n")
        self._tail = lines.pop()
        return self._lines(lines)

    def finish(self) -> list[ServerSentEvent]:
        """End of stream: the unfinished last line counts as a line, and an undispatched event is dispatched."""
        tail, self._tail = self._tail, b""
        out = self._lines([tail]) if tail else []
        event = self._dispatch()
        if event is not None:
            out.append(event)
        return out

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        out: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:  # a blank line ends the event
                if data:
                    event = self._dispatch()
                    if event is not None:
                        out.append(event)
                    data = self._data
                else:
                    self._event = b""
            elif line[:6] == b"data: ":  # the common case first
                data.append(line[6:])
            elif line[:1] != b":":  # a line opening with ':' is a comment (keep-alives, OPENROUTER PROCESSING)
                self._field(line)
        return out

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        # any other field name is ignored, as the standard says

    def _dispatch(self) -> ServerSentEvent | None:
        """The event read so far, if it had data (an event of only ``event:``/``id:`` lines is not dispatched)."""
        data, self._data = self._data, []
        event, self._event = self._event, b""
        if not data:
            return None
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        kind = event.decode("utf-8", "replace") if event else "message"
        return _new(ServerSentEvent, (text, kind, self._last_id, self._retry))
