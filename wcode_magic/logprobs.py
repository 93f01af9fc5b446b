"""Logprob values as providers send them, made consistent.

Providers mark "outside the top list" or "unknown" differently (protocol.md, Logprobs): OpenAI and vLLM send
-9999.0, others ``-inf``, ``null``, or clip at -100 / -1000. A real natural-log probability at or below -100
(p < 4e-44) carries no information a notebook can use, so every one of those becomes ``-inf`` here, once.
"""

from __future__ import annotations

import math
from typing import Any

NEG_INF = -math.inf
SENTINEL_FLOOR = -100.0


def normalize_logprob(value: Any) -> float:
    """A float logprob, with every provider's sentinel for "unknown / outside the list" as ``-inf``."""
    if type(value) is float and value > SENTINEL_FLOOR:  # the common case, kept fast
        return value
    if value is None:
        return NEG_INF
    v = float(value)
    if math.isnan(v) or v <= SENTINEL_FLOOR:
        return NEG_INF
    return v


def normalize_in_place(entry: dict[str, Any]) -> dict[str, Any]:
    """``normalize_entry`` for entries we decoded ourselves and own: no copies (20 alternatives per token add up)."""
    entry["logprob"] = normalize_logprob(entry.get("logprob"))
    entry.setdefault("bytes", None)
    alts = entry.get("top_logprobs")
    if alts:
        for alt in alts:
            alt["logprob"] = normalize_logprob(alt.get("logprob"))
            alt.setdefault("bytes", None)
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
