"""Fault injection for tests: parsing of the ``X-Wcode-Fault`` request header (honoured only in test mode).

Grammar (items separated by commas, spaces ignored, names case-insensitive)::

    header   := item ("," item)*
    item     := "status=" STATUS            answer STATUS with an OpenAI-style JSON error, before any stream
              | "retry_after=" SECONDS      with status: add ``Retry-After: SECONDS``
              | "retry_after_date"          with retry_after: send it as an HTTP-date (now + SECONDS) instead
              | "times=" N                  with status: only the first N requests with the same header value
                                            (and the same ``X-Wcode-Fault-Key``) fail; later ones succeed
              | "error_after=" N            after N answer tokens: an event with a top-level ``error`` object and
                                            ``finish_reason: "error"``, then the stream ends without [DONE]
              | "drop_after=" N             after N answer tokens: close the connection abruptly
              | "stall_after=" N            after N answer tokens: send nothing for stall_s seconds, then go on
              | "stall_s=" SECONDS          length of the stall (default 3600)
              | "malformed_after=" N        after N answer tokens: send ``data: {not json``, then go on
              | "keepalive"                 ``: OPENROUTER PROCESSING`` first, ``: keep-alive`` between events
              | "flood_after=" N            after N answer tokens: ``: keep-alive`` every 50 ms, forever
              | "trickle_after=" N          after N answer tokens: a ``data:`` line that never ends, one byte
                                            every 50 ms
              | "endless"                   the answer never ends: tokens go on past max_tokens, ~200 a second
              | "redirect=" REDIRECT        answer REDIRECT with ``Location:`` /v1/moved/chat/completions (which
                                            does not exist: a client that follows it gets 404)
              | "delay_ms=" MS              wait MS milliseconds before answering at all
              | "pace=" N                   streamed: at most N tokens a second, thinking and answer alike (how
                                            fast a real model writes, on any machine; 0 is no limit)
              | "think_inline"              local/ngram only: reasoning inline in content as <think>...</think>
              | "ignore_prefill"            drop a trailing assistant message (a prefill) and answer afresh, as
                                            servers that do not continue a prefilled answer do
    STATUS   := 401 | 402 | 403 | 404 | 408 | 422 | 429 | 500 | 502 | 503
    REDIRECT := 301 | 302 | 303 | 307 | 308

Not streamed, ``flood_after``, ``trickle_after`` and ``endless`` send a body that never ends (a space every 50 ms).

An ``*_after`` fault whose answer ends before N tokens fires at the end of the answer instead, so a test always
sees it. Example: ``X-Wcode-Fault: status=429, retry_after=1, times=2``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

HEADER = "x-wcode-fault"
KEY_HEADER = "x-wcode-fault-key"
STATUSES = frozenset({401, 402, 403, 404, 408, 422, 429, 500, 502, 503})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FLAGS = frozenset({"retry_after_date", "keepalive", "think_inline", "endless", "ignore_prefill"})
_SECONDS = frozenset({"retry_after", "stall_s", "delay_ms"})


class FaultSyntaxError(ValueError):
    """The header does not follow the grammar; the server answers 400 so a typo in a test fails loudly."""


@dataclass(frozen=True)
class Faults:
    """The parsed header. ``None`` means the item is absent."""

    status: int | None = None
    retry_after: float | None = None
    retry_after_date: bool = False
    times: int | None = None
    error_after: int | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    stall_s: float = 3600.0
    malformed_after: int | None = None
    keepalive: bool = False
    flood_after: int | None = None
    trickle_after: int | None = None
    endless: bool = False
    redirect: int | None = None
    delay_ms: float = 0.0
    pace: int = 0
    think_inline: bool = False
    ignore_prefill: bool = False

    @property
    def affects_stream(self) -> bool:
        """Whether anything happens after the response has started."""
        return self.keepalive or self.endless or any(n is not None for n in self._after)

    @property
    def never_ends(self) -> bool:
        """Whether the body never ends (a keep-alive flood, a trickle, an endless answer)."""
        return self.endless or self.flood_after is not None or self.trickle_after is not None

    @property
    def _after(self) -> tuple[int | None, ...]:
        return (
            self.error_after,
            self.drop_after,
            self.stall_after,
            self.malformed_after,
            self.flood_after,
            self.trickle_after,
        )


_NAMES = frozenset(f.name for f in fields(Faults))


def parse_faults(header: str) -> Faults:
    """Parse an ``X-Wcode-Fault`` value; raise :class:`FaultSyntaxError` naming the bad item."""
    values: dict[str, object] = {}
    for raw in header.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, text = (part.strip() for part in item.partition("="))
        name = name.lower()
        if name not in _NAMES:
            raise FaultSyntaxError(f"unknown fault item {item!r}; known: {', '.join(sorted(_NAMES))}")
        values[name] = _value(name, text, item)
    faults = Faults(**values)  # type: ignore[arg-type]
    if faults.status is not None and faults.status not in STATUSES:
        raise FaultSyntaxError(f"status must be one of {sorted(STATUSES)}, not {faults.status}")
    if faults.redirect is not None and faults.redirect not in REDIRECTS:
        raise FaultSyntaxError(f"redirect must be one of {sorted(REDIRECTS)}, not {faults.redirect}")
    return faults


def _value(name: str, text: str, item: str) -> object:
    if name in _FLAGS:
        if text:
            raise FaultSyntaxError(f"{name} takes no value: {item!r}")
        return True
    try:
        value = float(text) if name in _SECONDS else int(text)
    except ValueError:
        raise FaultSyntaxError(f"{name} needs a number: {item!r}") from None
    if value < 0:
        raise FaultSyntaxError(f"{name} must not be negative: {item!r}")
    return value


class TimesLedger:
    """Counts requests per (header value, fault key) so that ``times=N`` fails only the first N of them."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def should_fail(self, faults: Faults, header: str, key: str) -> bool:
        """Record one request; say whether its status fault applies."""
        if faults.times is None:
            return True
        with self._lock:
            count = self._seen.get((header, key), 0)
            self._seen[(header, key)] = count + 1
        return count < faults.times
