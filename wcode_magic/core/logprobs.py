"""Logprob values as providers send them, made consistent.

Providers mark "outside the top list" or "unknown" differently (protocol.md, Logprobs): OpenAI and vLLM send
-9999.0, others ``-inf``, ``null``, or clip at -100 / -1000. A real natural-log probability at or below -100
(p < 4e-44) carries no information a notebook can use, so every one of those becomes ``-inf`` here, once.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any

NEG_INF = -math.inf
SENTINEL_FLOOR = -100.0


def normalize_logprob(value: Any) -> float:
    """A float logprob, with every provider's sentinel for "unknown / outside the list" as ``-inf``."""
    if type(value) is float and value > SENTINEL_FLOOR:  # the common case, kept fast
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):  # null, or something that is no number at all: unknown
        return NEG_INF
    if math.isnan(v) or v <= SENTINEL_FLOOR:
        return NEG_INF
    return v


def normalize_in_place(entry: dict[str, Any]) -> dict[str, Any]:
    """``normalize_entry`` for entries we decoded ourselves and own: no copies (20 alternatives per token add up).

    Only what needs it is written: a float above the floor stays as it is, present keys are not set again.
    """
    value = entry.get("logprob")
    if type(value) is not float or not value > SENTINEL_FLOOR:
        entry["logprob"] = normalize_logprob(value)
    if "bytes" not in entry:
        entry["bytes"] = None
    alts = entry.get("top_logprobs")
    if alts:
        for alt in alts:
            value = alt.get("logprob")
            if type(value) is not float or not value > SENTINEL_FLOOR:
                alt["logprob"] = normalize_logprob(value)
            if "bytes" not in alt:
                alt["bytes"] = None
    else:
        entry["top_logprobs"] = []
    return entry


def normalize_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One ``{token, logprob, bytes, top_logprobs}`` entry with normalised values and missing keys filled in."""
    return {
        "token": entry.get("token", ""),
        "logprob": normalize_logprob(entry.get("logprob")),
        "bytes": entry.get("bytes"),
        "top_logprobs": [
            {
                "token": alt.get("token", ""),
                "logprob": normalize_logprob(alt.get("logprob")),
                "bytes": alt.get("bytes"),
            }
            for alt in entry.get("top_logprobs") or ()
        ],
    }


def ambiguous_token(token: str) -> bool:
    """Token strings that can stand for several byte pieces (U+FFFD, escaped fragments): their bytes decide."""
    return "\ufffd" in token or "\\x" in token


def _as_bytes(raw: Any) -> bytes | None:
    """A ``bytes`` field as an immutable bytes object (not a list the garbage collector tracks); None if unusable."""
    if raw is None or not isinstance(raw, (list, tuple)):  # bytes(5) would be five zero bytes; bytes(10**12) 1 TB
        return None
    try:
        return bytes(raw)
    except (TypeError, ValueError):  # not a list of 0..255: treat as not sent, the token string decides
        return None


_TOKEN = itemgetter("token")
_LOGPROB = itemgetter("logprob")


class LogprobColumns:
    """One segment's logprob entries as flat columns, filled as the chunks arrive.

    The frames need columns (every sampled token, every alternative's logprob), not 20 small dicts per token.
    Pulling them out of each chunk the client has decoded anyway costs a few microseconds per chunk while the
    stream runs (behind the network), where decoding the kept chunk text again on first read costs about a
    second for 20,000 tokens x 20 alternatives. Only strings, numbers and bytes go in, held by a few big lists,
    so the garbage collector has nothing new to rescan. Values are kept as sent (None, NaN, -9999...): readers
    normalise them in one vectorised pass.
    """

    __slots__ = ("alt_bytes", "alt_logprobs", "alt_tokens", "bytes", "counts", "logprobs", "tokens")

    def __init__(self) -> None:
        self.tokens: list[Any] = []  # the sampled token's string per position (None when the provider left it out)
        self.logprobs: list[Any] = []  # the sampled token's logprob as sent
        self.bytes: list[bytes | None] = []  # the sampled token's bytes, when sent
        self.counts: list[int] = []  # how many alternatives each position listed
        self.alt_tokens: list[Any] = []  # every listed alternative, positions one after another
        self.alt_logprobs: list[Any] = []
        # bytes of the alternatives at positions where a token string is ambiguous (U+FFFD, "\\x.."), by index
        # into alt_tokens: only there can two equal strings be different tokens, or a string not say its bytes
        self.alt_bytes: dict[int, bytes | None] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def alternatives(self, position: int, start: int) -> list[dict[str, Any]]:
        """One position's listed alternatives as ``{token, logprob, bytes}`` (logprob normalised; bytes only where
        a string there is ambiguous, else None). ``start`` is the position's first index into ``alt_tokens``
        (the sum of the earlier ``counts``): callers walking many positions keep a running sum."""
        end = start + self.counts[position]
        return [
            {"token": token, "logprob": normalize_logprob(logprob), "bytes": self.alt_bytes.get(i)}
            for i, token, logprob in zip(
                range(start, end), self.alt_tokens[start:end], self.alt_logprobs[start:end], strict=True
            )
        ]

    def add(self, entries: list[Any]) -> None:
        """Append one chunk's entries. Never raises: a malformed entry becomes an entry with nothing known."""
        for entry in entries:
            try:  # the common case, kept to a few C-level calls: a well-formed entry with its alternatives
                token, logprob, raw, alts = _ENTRY(entry)
                toks = list(map(_TOKEN, alts))
                lps = list(map(_LOGPROB, alts))
            except (KeyError, TypeError):
                token, logprob, raw, alts, toks, lps = _loose(entry)
            self.tokens.append(token)
            self.logprobs.append(logprob)
            self.bytes.append(None if raw is None else _as_bytes(raw))
            if toks:
                if _ambiguous_any(token, toks):
                    base = len(self.alt_tokens)
                    for j, alt in enumerate(alts):
                        self.alt_bytes[base + j] = _as_bytes(alt.get("bytes"))
                self.alt_tokens += toks
                self.alt_logprobs += lps
            self.counts.append(len(toks))


_ENTRY = itemgetter("token", "logprob", "bytes", "top_logprobs")


def _ambiguous_any(token: Any, alt_tokens: list[Any]) -> bool:
    """Whether the sampled token or any alternative is a byte fragment (one join and two scans: cheap per chunk)."""
    try:
        joined = "".join(alt_tokens) + token
    except TypeError:  # a None among them: check one by one
        return any(type(t) is str and ambiguous_token(t) for t in (token, *alt_tokens))
    return "\ufffd" in joined or "\\x" in joined


def _loose(entry: Any) -> tuple[Any, Any, Any, list[dict[str, Any]], list[Any], list[Any]]:
    """(token, logprob, bytes, alternatives, their tokens, their logprobs) of an entry missing keys or malformed."""
    if not isinstance(entry, dict):
        entry = {}
    alts = entry.get("top_logprobs")
    alts = [a if isinstance(a, dict) else {} for a in alts] if isinstance(alts, list) else []
    toks = [a.get("token") for a in alts]
    lps = [a.get("logprob") for a in alts]
    return entry.get("token"), entry.get("logprob"), entry.get("bytes"), alts, toks, lps
