"""Session totals by model: calls, tokens and cost, for ``%wcode usage``.

Fed by a client observer, so wm.chat, the magics and the panel all count. Counts only what the server reported
(a stream stopped before its usage chunk adds a call but no tokens) and sums cost only where a price is known.
An answer served without the network (``wm.replay``, ``cache=True``) costs nothing: it counts in ``served``, and
what it cost when it was made in ``saved_cny`` instead of ``cost_cny``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..core.response import Response

if TYPE_CHECKING:
    import pandas as pd

FIELDS = (
    "calls",
    "prompt_tokens",
    "reasoning_tokens",
    "answer_tokens",
    "total_tokens",
    "cost_cny",
    "served",
    "saved_cny",
)
_totals: dict[str, dict[str, float]] = {}
_lock = threading.Lock()  # observers run in the client's worker thread as well as the kernel's


def add(response: Response) -> None:
    """Client observer: add one call's usage to its model's totals."""
    u = response.usage
    model = response.request.get("model") or response.model or "?"
    with _lock:
        row = _totals.setdefault(model, dict.fromkeys(FIELDS, 0))
        row["calls"] += 1
        row["prompt_tokens"] += u.prompt_tokens or 0
        row["reasoning_tokens"] += u.reasoning_tokens or 0
        row["answer_tokens"] += u.answer_tokens or 0
        row["total_tokens"] += u.total_tokens or 0
        if response.replayed or response.cached:
            row["served"] += 1
            row["saved_cny"] += response.cost or 0.0
        else:
            row["cost_cny"] += response.cost or 0.0


def totals() -> dict[str, dict[str, float]]:
    with _lock:
        return {model: dict(row) for model, row in _totals.items()}


def spent() -> float:
    """CNY charged this session, every model together: what the cost check (core/budget.py) counts against the cap."""
    with _lock:
        return sum(row["cost_cny"] for row in _totals.values())


def usage() -> pd.DataFrame:
    """One row per model used this session, plus a total row when there are several."""
    import pandas as pd

    data = totals()
    frame = pd.DataFrame.from_dict(data, orient="index", columns=list(FIELDS)) if data else pd.DataFrame(columns=FIELDS)
    if len(frame) > 1:
        frame.loc["total"] = frame.sum()
    frame.index.name = "model"
    return frame
