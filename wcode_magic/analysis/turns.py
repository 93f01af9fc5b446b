"""``r.turns``: a tool loop's steps as a DataFrame, one row per turn (pandas imported only when asked)."""

from __future__ import annotations

from typing import Any

from ..core.response import Response

COLUMNS = ("step", "kind", "name", "arguments", "result", "error", "tokens", "cost", "seconds")


def turns(response: Response) -> Any:
    """One row per turn of the loop: thinking, tool_call, tool_result, answer, in the order they happened.

    ``tokens``, ``cost`` and ``seconds`` of a model turn are on its first row that is not thinking (a thinking row
    carries its reasoning tokens), so the columns add up to the loop's; a tool_result's ``seconds`` is the time its
    function ran. An ordinary call (no loop) has its single answer (and thinking) as step 1.
    """
    import pandas as pd

    rows = response.tool_turns or _single(response)
    frame = pd.DataFrame({c: [row.get(c) for row in rows] for c in COLUMNS}, columns=list(COLUMNS))
    for column in ("tokens",):
        frame[column] = frame[column].astype("Int64")
    for column in ("cost", "seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _single(response: Response) -> list[dict[str, Any]]:
    from ..core.toolloop import ToolRun, record_step

    run = ToolRun(tools=[], max_steps=1)
    record_step(run, 1, response)
    return run.turns
