"""Answers served without the network: from a recording (``wm.replay``) or from the history (``cache=True``).

The spine only knows the shape of such an answer (``Served``) and how a request is matched (``request_key``); who
finds one is registered at the package root (``hooks.serve_from``), so the client asks before it sends anything and
imports neither the recordings nor the history.

A request matches on what was sent: model, messages and every request parameter, never headers, the key or
base_url (none of which is in the body), and not the ``stream`` / ``stream_options`` flags: a recorded stream serves a
non-streamed ask as well, and the other way round.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

NOT_MATCHED = frozenset({"stream", "stream_options"})

# Which repeat of an identical request this call is, within one wm.compare / wm.batch run (0 outside one): the
# cache serves the n-th stored answer to the n-th repeat, so a rerun sweep of n samples gets its n samples back.
OCCURRENCE: contextvars.ContextVar[int] = contextvars.ContextVar("wcode_occurrence", default=0)


def matched_part(request: dict[str, Any]) -> dict[str, Any]:
    """The request as it is matched: the body without the stream flags."""
    return {k: v for k, v in request.items() if k not in NOT_MATCHED}


def request_key(request: dict[str, Any]) -> str:
    """A stable hash of ``matched_part(request)``: canonical JSON (sorted keys, no spaces), SHA-256 in hex."""
    text = json.dumps(matched_part(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# Where a recorded error's words named the server (``Could not reach http://...``): a recording never holds a
# base_url, so it holds this instead, and a replay puts the replaying call's base_url back.
BASE_URL = "{base_url}"


def swap_text(value: Any, old: str, new: str) -> Any:
    """``value`` (JSON) with ``old`` replaced by ``new`` in every string in it."""
    if not old:
        return value
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [swap_text(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: swap_text(v, old, new) for k, v in value.items()}
    return value


@dataclass
class Served:
    """A whole answer to fold instead of a server's: the stream's SSE data fields with their times (seconds from
    the request), or one non-streamed body; and the timings and date it was made with. An exchange that did not
    end in an answer ends as it did: ``error`` (``errors.describe`` of the exception it raised, raised again once
    its events are folded) or ``stopped`` (the user stopped it: StoppedError with the partial)."""

    source: Literal["replayed", "cached"]
    events: list[tuple[float, str]] = field(default_factory=list)
    body: str | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    recorded_at: str | None = None  # ISO date and time the answer was first received
    pace: Literal["instant", "recorded"] = "instant"
    error: dict[str, Any] | None = None
    stopped: bool = False
