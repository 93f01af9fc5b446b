"""A tool loop as a cell shows it: each finished step above the one streaming, calls and results as they happen.

Pure rendering (Markdown for notebooks, plain text for terminals and ``text/plain``) from the loop's turn rows
(``ToolRun.turns``); the live views (``live.py``) put it above the Response that is streaming. Every step is a
``<details>`` block: open while the loop runs, closed once it is done, so the answer stands out and the steps stay
one click away. Results are shortened on screen (``toolloop.shorten``); the Response keeps them whole.
"""

from __future__ import annotations

import html
from typing import Any

from ..core.response import Response
from ..core.toolloop import shorten

ARGS_CHARS = 200


def _steps(turns: list[dict[str, Any]], steps: list[Response], shown: Response | None) -> list[int]:
    """The steps to draw above ``shown`` (the Response drawn below as it streams, or as the answer): those before
    its own; all of them when nothing is drawn below."""
    own = next((i + 1 for i, s in enumerate(steps) if s is shown), len(steps) + 1)
    if shown is None:
        own = len(steps) + 2
    return sorted({row["step"] for row in turns if row["step"] < own})


def _call_line(row: dict[str, Any]) -> str:
    return f"{row['name']}({shorten(str(row.get('arguments') or ''), ARGS_CHARS)})"


def _result_line(row: dict[str, Any]) -> tuple[str, bool]:
    if row.get("error"):
        return shorten(str(row["error"])), True
    return shorten(str(row.get("result") or "")), False


def markdown(turns: list[dict[str, Any]], steps: list[Response], shown: Response | None, *, running: bool) -> str:
    """The finished steps as Markdown blocks (empty when there are none)."""
    parts: list[str] = []
    for step in _steps(turns, steps, shown):
        rows = [r for r in turns if r["step"] == step]
        calls = [r for r in rows if r["kind"] == "tool_call"]
        names = ", ".join(dict.fromkeys(str(r["name"]) for r in calls)) or "no call"
        lines: list[str] = []
        for r in rows:
            if r["kind"] == "thinking":
                words = len(str(r.get("result") or "").split())
                quoted = html.escape(str(r.get("result") or "")).replace("\n", "<br>")
                lines.append(f"<details><summary>Thinking ({words} words)</summary>\n\n> {quoted}\n\n</details>\n")
            elif r["kind"] == "answer" and r.get("result"):
                lines.append(html.escape(str(r["result"])) + "\n")
            elif r["kind"] == "tool_call":
                result = next((x for x in rows if x["kind"] == "tool_result" and x.get("id") == r.get("id")), None)
                line = f"- 🔧 {_code(_call_line(r))}"
                if result is not None:
                    text, failed = _result_line(result)
                    mark = "⚠️" if failed else "→"
                    line += f" {mark} {_code(text)}"
                else:
                    line += " …"
                lines.append(line)
        summary = f"Step {step}: {html.escape(names)}"
        parts.append(
            f"<details{' open' if running else ''}><summary>{summary}</summary>\n\n"
            + "\n".join(lines)
            + "\n\n</details>\n"
        )
    return "\n".join(parts)


def _code(text: str) -> str:
    """Inline code that survives any text: HTML (a Markdown code span would show entities and break at a `)."""
    return f"<code>{html.escape(text, quote=False)}</code>"


def steps_markdown(response: Response) -> str:
    """A finished loop's steps above its answer, for the Response's own Markdown (``_repr_markdown_``)."""
    return markdown(response.tool_turns, response.steps, response, running=False)


def plain(turns: list[dict[str, Any]], steps: list[Response], shown: Response | None) -> str:
    """The finished steps as plain text lines."""
    lines: list[str] = []
    for step in _steps(turns, steps, shown):
        for r in turns:
            if r["step"] != step:
                continue
            if r["kind"] == "tool_call":
                lines.append(f"[step {step}] call {_call_line(r)}")
            elif r["kind"] == "tool_result":
                text, failed = _result_line(r)
                lines.append(f"[step {step}] {'error' if failed else 'result'}: {text}")
    return "\n".join(lines)


def call_started(call: Any) -> str:
    """A terminal's line when a call is about to run."""
    return f"[step {call.step}] call {call.name}({shorten(call.arguments, ARGS_CHARS)})"


def call_ended(row: dict[str, Any]) -> str:
    """A terminal's line when a call's result is in."""
    text, failed = _result_line(row)
    return f"[step {row['step']}] {'error' if failed else 'result'}: {text}"
