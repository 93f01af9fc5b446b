"""The tool loop: the model calls the user's Python functions, the results go back, until it answers.

``wm.chat(..., tools=[fn, ...])`` (and ``achat``) come here through ``hooks`` (the client names the job, the
package root says who does it), so the client imports nothing of this module. Each step is one ordinary chat call
(streamed, retried, recorded in the history like any other); between steps the calls it asked for run:

- only functions the user passed can run, found by name; model text is never evaluated;
- arguments are read as JSON and checked against the signature (``toolspec.check_arguments``);
- async functions are awaited, several in one step concurrently; sync functions run in order: in the caller's
  thread for ``chat`` (so Ctrl-C and a kernel interrupt reach them), in a worker thread for ``achat`` (so the
  event loop stays awake and a stop ends the loop at once, the function finishing in the background);
- every failure (arguments that are not JSON or do not fit, an unknown name, a function that raises, a call the
  user declined) goes back to the model as that call's result, worded so it can recover, and into ``r.turns``;
- the loop ends at an answer (a step without tool calls) or after ``max_steps`` steps; then every call of the last
  step is answered "not run" so the conversation stays valid, and the status is ``max_steps``.

The Response returned is the last step's, with the loop's record on it: ``steps`` (every step's Response),
``tool_turns`` (the rows of ``r.turns``), ``tool_messages`` (what the loop added to the conversation: the
assistant turns with their calls, the tool results, the answer) and usage summed over the steps (so ``cost`` is
the loop's). A stop (StoppedError, KeyboardInterrupt, a cancelled task) keeps all of it on ``.partial``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import client, errors
from .response import Response, Usage
from .stream import Event
from .toolspec import Tool, ToolArgumentError, as_tools, check_arguments

MAX_STEPS = 8
SHOWN_CHARS = 300  # a result is shortened to this on screen (whole in the Response)


@dataclass
class ToolCall:
    """One call the model asked for, as a confirm callback sees it."""

    id: str
    name: str
    arguments: str
    step: int


@dataclass
class ToolRun:
    """The loop's record while it runs: the steps so far, the turns, the messages it added."""

    tools: list[Tool]
    max_steps: int
    steps: list[Response] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | done | max_steps | stopped | error
    current: Response | None = None  # the step being streamed

    @property
    def by_name(self) -> dict[str, Tool]:
        return {t.name: t for t in self.tools}


# -- the checks -------------------------------------------------------------------------------------------------
def check_max_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.InvalidParameterError(
            f"max_steps={value!r} is not allowed: max_steps takes an integer >= 1 (model turns in one tool loop).",
            param="max_steps",
            value=value,
        )
    return value


def check_confirm(value: Any) -> Callable[[ToolCall], Any] | None:
    """``confirm``: False (run every call), True (ask in the terminal), or a function (call) -> bool; with
    ``achat`` it may be async (the notebook's buttons are: ``notebook/approve.py``)."""
    if value is False or value is None:
        return None
    if value is True:
        return ask_in_terminal
    if callable(value):
        return value
    raise errors.InvalidParameterError(
        f"confirm={value!r} is not allowed: confirm takes True (ask before each call), False, or a function "
        "taking the call and returning True to run it.",
        param="confirm",
        value=value,
    )


def ask_in_terminal(call: ToolCall) -> bool:
    """The default approval: a prompt (in a notebook, Jupyter's input box); anything but y/yes declines."""
    answer = input(f"Run {call.name}({call.arguments})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


# -- what goes back to the model ----------------------------------------------------------------------------
def result_text(value: Any) -> str:
    """A function's return value as the tool message's content: text as it is, JSON when it is JSON, else str."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float, list, dict)):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """A result as shown on screen: whole up to ``limit`` characters, else cut with the count left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit:,} more characters)"


def _prepared(run: ToolRun, call: dict[str, Any], step: int) -> tuple[ToolCall, Tool | None, dict[str, Any] | str]:
    """The call, its tool, and its checked arguments, or the error message for the model."""
    fn = call.get("function") or {}
    tc = ToolCall(str(call.get("id") or ""), str(fn.get("name") or ""), str(fn.get("arguments") or ""), step)
    tool = run.by_name.get(tc.name)
    if tool is None:
        known = ", ".join(t.name for t in run.tools if t.runs) or "none"
        return tc, None, f"Error: there is no tool named {tc.name!r}. The tools you can call: {known}."
    if tool.fn is None:
        return (
            tc,
            tool,
            (
                f"Error: {tc.name} is described but has no function to run here; call one of the tools that runs: "
                f"{', '.join(t.name for t in run.tools if t.runs)}."
            ),
        )
    try:
        return tc, tool, check_arguments(tool, tc.arguments)
    except ToolArgumentError as e:
        return tc, tool, f"Error: {e}"


def _raised(name: str, e: BaseException) -> str:
    return f"Error: {name} raised {type(e).__name__}: {e}"


DECLINED = "Declined: the user did not allow this call. Do not call it again unless the user asks; answer without it."


# -- recording ------------------------------------------------------------------------------------------------------
def _row(step: int, kind: str, **kw: Any) -> dict[str, Any]:
    row = {
        "step": step,
        "kind": kind,
        "name": None,
        "arguments": None,
        "result": None,
        "error": None,
        "tokens": None,
        "cost": None,
        "seconds": None,
    }
    row.update(kw)
    return row


def record_step(run: ToolRun, step: int, r: Response) -> None:
    """The model's turn as rows: thinking, each call, the text; its tokens and cost on the first non-thinking row."""
    run.steps.append(r)
    rows = []
    if r.reasoning:
        rows.append(_row(step, "thinking", result=r.reasoning, tokens=r.usage.reasoning_tokens))
    for call in r.tool_calls:
        fn = call.get("function") or {}
        rows.append(_row(step, "tool_call", name=fn.get("name"), arguments=fn.get("arguments"), id=call.get("id")))
    if r.text or not r.tool_calls:
        rows.append(_row(step, "answer", result=r.text, error=_error_of(r)))
    own = next((row for row in rows if row["kind"] != "thinking"), rows[-1] if rows else None)
    if own is not None:
        own["tokens"] = r.usage.answer_tokens if own["kind"] != "thinking" else r.usage.completion_tokens
        own["cost"] = r.cost
        own["seconds"] = r.latency_s
    run.turns.extend(rows)


def _error_of(r: Response) -> str | None:
    if r.status in ("done",):
        return None
    if r.error:
        return str(r.error.get("message") or r.error)
    return r.status


def _result_row(run: ToolRun, tc: ToolCall, content: str, *, failed: bool, seconds: float | None) -> dict[str, Any]:
    row = _row(
        tc.step,
        "tool_result",
        name=tc.name,
        arguments=tc.arguments,
        result=None if failed else content,
        error=content if failed else None,
        seconds=seconds,
        id=tc.id,
    )
    run.turns.append(row)
    run.messages.append({"role": "tool", "tool_call_id": tc.id, "content": content})
    return row


def finish(run: ToolRun, last: Response | None, status: str) -> Response | None:
    """Put the loop's record on the last Response: steps, turns, messages, summed usage, the loop's status."""
    run.status = status
    if last is None:
        return None
    if status in ("stopped", "error"):
        _close_conversation(run, last, "was stopped" if status == "stopped" else "failed")
    last.steps = list(run.steps)
    last.tool_turns = run.turns
    last.tool_messages = run.messages
    last.loop_status = None if status == "done" else status
    if len(run.steps) > 1:
        last.usage = _summed([s.usage for s in run.steps])
    return last


def _close_conversation(run: ToolRun, last: Response, why: str) -> None:
    """After a stop or a failure, ``run.messages`` as a conversation can continue from: every call answered (as
    not run), and a partial answer the user saw kept as the assistant's turn (its half-assembled calls are not)."""
    if last.message not in run.messages and last.text:
        run.messages.append({"role": "assistant", "content": last.text})
    answered = {m.get("tool_call_id") for m in run.messages if m.get("role") == "tool"}
    for m in list(run.messages):
        for call in m.get("tool_calls") or []:
            if call.get("id") not in answered:
                run.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.get("id"),
                        "content": f"Not run: the tool loop {why}.",
                    }
                )
    # a tool message must directly follow its call: put the late ones right after the assistant turn
    run.messages[:] = _ordered(run.messages)


def _ordered(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tool_of = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "tool":
            continue
        out.append(m)
        out.extend(tool_of[c.get("id")] for c in m.get("tool_calls") or [] if c.get("id") in tool_of)
    return out


def _summed(usages: list[Usage]) -> Usage:
    def total(name: str) -> int | None:
        values = [getattr(u, name) for u in usages]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    counts = {n: total(n) for n in ("prompt_tokens", "completion_tokens", "total_tokens")}
    reasoning = total("reasoning_tokens")
    raw: dict[str, Any] = {k: v for k, v in counts.items() if v is not None}
    if reasoning is not None:
        raw["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return Usage(
        prompt_tokens=counts["prompt_tokens"],
        completion_tokens=counts["completion_tokens"],
        total_tokens=counts["total_tokens"],
        reasoning_tokens=reasoning,
        raw=raw,
    )


# -- the loop, sync ----------------------------------------------------------------------------------------------
def _setup(
    prompt_or_messages: str | list[dict[str, Any]], tools: Any, max_steps: Any, confirm: Any
) -> tuple[ToolRun, list[dict[str, Any]], Callable[[ToolCall], Any] | None]:
    run = ToolRun(as_tools(tools), check_max_steps(max_steps))
    messages = client.build_messages(prompt_or_messages, None)  # the system prompt is added by each step's call
    return run, messages, check_confirm(confirm)


def _emit(on_event: Callable[[Event], None] | None, kind: str, value: Any) -> None:
    if on_event is not None:
        on_event(Event(kind, value))  # type: ignore[arg-type]


def chat(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    tools: Any,
    max_steps: Any = MAX_STEPS,
    confirm: Any = False,
    on_event: Callable[[Event], None] | None = None,
    **kw: Any,
) -> Response:
    """The loop for ``wm.chat``: see the module's docstring."""
    run, messages, ask = _setup(prompt_or_messages, tools, max_steps, confirm)
    specs = [t.spec for t in run.tools]
    _emit(on_event, "tools", run)
    on_event = _watching(run, on_event)
    last: Response | None = None
    step = 0
    try:
        for step in range(1, run.max_steps + 1):
            try:
                last = client.chat(messages, tools=specs, on_event=on_event, **kw)
            except errors.WcodeError as e:
                e.partial = finish(
                    run, _current(run, last), "stopped" if isinstance(e, errors.StoppedError) else "error"
                )
                raise
            record_step(run, step, last)
            messages.append(last.message)
            run.messages.append(last.message)
            if not last.tool_calls:
                return _done(run, last, "done")
            final = step == run.max_steps
            for call in last.tool_calls:
                tc, tool, prepared = _prepared(run, call, step)
                _emit(on_event, "tool_call_ready", tc)
                content, failed, seconds = _run_sync(tc, tool, prepared, ask, final, run.max_steps)
                row = _result_row(run, tc, content, failed=failed, seconds=seconds)
                messages.append(run.messages[-1])
                _emit(on_event, "tool_result", row)
        assert last is not None
        return _done(run, last, "max_steps")
    except KeyboardInterrupt:
        partial = finish(run, _current(run, last), "stopped")
        raise errors.StoppedError(_stopped_message(run, step), partial=partial) from None


def _watching(run: ToolRun, on_event: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """``on_event`` passed on, noting each step's Response as it starts (a stop mid-stream keeps it)."""

    def watch(ev: Event) -> None:
        if ev.kind == "start":
            run.current = ev.value
        if on_event is not None:
            on_event(ev)

    return watch


def _current(run: ToolRun, last: Response | None) -> Response | None:
    """The Response a stop leaves: the step streaming when it came (recorded now), else the last one."""
    current = run.current
    if current is not None and all(current is not s for s in run.steps):
        record_step(run, len(run.steps) + 1, current)
        return current
    return last


def _done(run: ToolRun, last: Response, status: str) -> Response:
    finish(run, last, status)
    return last


def _stopped_message(run: ToolRun, step: int) -> str:
    return (
        f"Stopped in step {step} of the tool loop; the {len(run.steps)} step(s) so far are kept in `.partial` "
        "(and `wm.last()`)."
    )


def _run_sync(
    tc: ToolCall,
    tool: Tool | None,
    prepared: dict[str, Any] | str,
    ask: Callable[[ToolCall], Any] | None,
    final: bool,
    max_steps: int,
) -> tuple[str, bool, float | None]:
    """(content for the model, whether it failed, seconds the function ran)."""
    if final:
        return f"Not run: the tool loop reached max_steps={max_steps}.", True, None
    if isinstance(prepared, str) or tool is None or tool.fn is None:
        return str(prepared), True, None
    if ask is not None:
        allowed = ask(tc)
        if inspect.isawaitable(allowed):
            allowed = client.LOOP.run(allowed)
        if not allowed:
            return DECLINED, True, None
    started = time.perf_counter()
    try:
        if tool.is_async:
            value = client.LOOP.run(tool.fn(**prepared))
        else:
            value = tool.fn(**prepared)
            if inspect.isawaitable(value):
                value = client.LOOP.run(value)
    except Exception as e:
        return _raised(tc.name, e), True, time.perf_counter() - started
    return result_text(value), False, time.perf_counter() - started


# -- the loop, async ---------------------------------------------------------------------------------------------
async def achat(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    tools: Any,
    max_steps: Any = MAX_STEPS,
    confirm: Any = False,
    on_event: Callable[[Event], None] | None = None,
    **kw: Any,
) -> Response:
    """The loop for ``wm.achat``: the same, with async tools of one step run concurrently."""
    run, messages, ask = _setup(prompt_or_messages, tools, max_steps, confirm)
    specs = [t.spec for t in run.tools]
    _emit(on_event, "tools", run)
    on_event = _watching(run, on_event)
    last: Response | None = None
    step = 0
    try:
        for step in range(1, run.max_steps + 1):
            try:
                last = await client.achat(messages, tools=specs, on_event=on_event, **kw)
            except errors.WcodeError as e:
                e.partial = finish(
                    run, _current(run, last), "stopped" if isinstance(e, errors.StoppedError) else "error"
                )
                raise
            record_step(run, step, last)
            messages.append(last.message)
            run.messages.append(last.message)
            if not last.tool_calls:
                return _done(run, last, "done")
            final = step == run.max_steps
            prepared = [_prepared(run, call, step) for call in last.tool_calls]
            for tc, _, _ in prepared:
                _emit(on_event, "tool_call_ready", tc)
            outcomes = await _run_async(prepared, ask, final, run.max_steps)
            for (tc, _, _), (content, failed, seconds) in zip(prepared, outcomes, strict=True):
                row = _result_row(run, tc, content, failed=failed, seconds=seconds)
                messages.append(run.messages[-1])
                _emit(on_event, "tool_result", row)
        assert last is not None
        return _done(run, last, "max_steps")
    except (KeyboardInterrupt, asyncio.CancelledError) as e:
        partial = finish(run, _current(run, last), "stopped")
        if isinstance(e, KeyboardInterrupt) or client._is_cell_task():
            raise errors.StoppedError(_stopped_message(run, step), partial=partial) from None
        raise


async def _run_async(
    prepared: list[tuple[ToolCall, Tool | None, dict[str, Any] | str]],
    ask: Callable[[ToolCall], Any] | None,
    final: bool,
    max_steps: int,
) -> list[tuple[str, bool, float | None]]:
    """Each call's outcome, in order; the async functions of the step awaited together."""
    outcomes: list[tuple[str, bool, float | None] | None] = [None] * len(prepared)
    waiting: dict[int, Any] = {}
    for i, (tc, tool, args) in enumerate(prepared):
        if final:
            outcomes[i] = (f"Not run: the tool loop reached max_steps={max_steps}.", True, None)
        elif isinstance(args, str) or tool is None or tool.fn is None:
            outcomes[i] = (str(args), True, None)
        elif ask is not None and not await _allowed(ask, tc):
            outcomes[i] = (DECLINED, True, None)
        elif tool.is_async:
            waiting[i] = _timed_async(tc, tool.fn, args)
        else:
            outcomes[i] = await _timed_sync(tc, tool.fn, args)
    if waiting:
        done = await asyncio.gather(*waiting.values())
        for i, outcome in zip(waiting, done, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


async def _allowed(ask: Callable[[ToolCall], Any], tc: ToolCall) -> bool:
    allowed = ask(tc)
    if inspect.isawaitable(allowed):
        allowed = await allowed
    return bool(allowed)


async def _timed_async(tc: ToolCall, fn: Callable[..., Any], args: Mapping[str, Any]) -> tuple[str, bool, float]:
    started = time.perf_counter()
    try:
        value = await fn(**args)
    except Exception as e:
        return _raised(tc.name, e), True, time.perf_counter() - started
    return result_text(value), False, time.perf_counter() - started


async def _timed_sync(tc: ToolCall, fn: Callable[..., Any], args: Mapping[str, Any]) -> tuple[str, bool, float]:
    """A sync function in a worker thread, awaited: the loop stays awake, so Stop and a kernel interrupt (which
    cancel the awaiting task) end the loop at once. The function itself cannot be killed: it runs to its end in
    the background, and its result is dropped."""
    started = time.perf_counter()
    try:
        value = await asyncio.to_thread(fn, **args)
        if inspect.isawaitable(value):
            value = await value
    except Exception as e:
        return _raised(tc.name, e), True, time.perf_counter() - started
    return result_text(value), False, time.perf_counter() - started
