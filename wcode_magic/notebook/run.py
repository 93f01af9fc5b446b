"""One chat from a magic: options and prompt in, a live view while it streams, a conversation kept consistent.

Two drivers share everything else:

- In a kernel, the ``%%chat`` cell is rewritten by an input transformer (``magics``) into ``await
  cell_async(...)``, so it runs as top-level await on the kernel's own loop: the cell lasts until the answer is
  done (Run All stays in order), widget events such as the panel's Stop are handled meanwhile, and a kernel
  interrupt cancels the task. The driver wakes every 50 ms, which both feeds the live view and lets an interrupt
  land promptly even while the stream is stalled (ipykernel 7.4 delivers it only when the loop wakes up).
- Everywhere else (a terminal, or a magic called from code) the sync client runs in the cell's thread and a
  KeyboardInterrupt stops it.

Either way the stopped or failed call keeps its partial answer: shown, marked, added to the conversation and
(via the client's observer) to history. Expected failures surface as ``CellError``, whose one-line message IPython
prints instead of a traceback, and which still fails the cell so Run All stops there.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from ..core import client, errors
from ..core.conversations import CONVERSATIONS, Conversation
from ..core.response import Response
from ..core.settings import SESSION
from . import flags, spend
from .interpolate import interpolate
from .live import TOOL_EVENTS, CodeText, NotebookView, PlainText, TerminalView, View, code_blocks, is_rich

TICK_S = 0.05


class CellError(Exception):
    """An expected failure (bad option, no key, stopped, ...): IPython shows ``message`` alone, no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


@dataclass
class Call:
    """A prepared magic call: what to send, where the exchange goes afterwards, how to show it."""

    opts: flags.ChatOptions
    prompt: str
    conversation: Conversation | None
    kwargs: dict[str, Any]

    @property
    def model(self) -> str:
        return self.kwargs["model"]


def make_view(shell: Any, fmt: str) -> View:
    return NotebookView(fmt, shell=shell) if is_rich(shell) else TerminalView()


def prepare(shell: Any, options: flags.ChatOptions, text: str, *, conversation: bool) -> Call:
    """Resolve the model, fill the prompt's placeholders and pick the conversation; nothing is sent yet."""
    prompt = text.strip("\n")
    if options.interpolate and shell is not None:
        prompt = interpolate(prompt, shell.user_ns, SESSION.known_keys())
    if not prompt.strip():
        raise CellError("The prompt is empty: write it in the cell below the %%chat line.")
    conv: Conversation | None = None
    if conversation:
        if options.new:
            CONVERSATIONS.reset(options.name)
        conv = CONVERSATIONS.get(options.name)
        if options.system is not None:
            conv.system = options.system
        messages: str | list[dict[str, Any]]
        system, messages = conv.system, conv.request(prompt)
    else:
        system, messages = options.system, prompt
    model = SESSION.resolve_model(options.model)
    kwargs: dict[str, Any] = {
        "prompt_or_messages": messages,
        "model": model,
        "system": system,
        "stream": options.stream,
        "headers": options.headers or None,
        "extra_body": options.extra_body or None,
        **options.params,
    }
    if options.schema is not None:
        kwargs["schema"] = schema_value(options.schema, shell)
    if options.tool_names:
        kwargs["tools"] = notebook_tools(shell, options.tool_names)
        kwargs["confirm"] = options.confirm
        if options.max_steps is not None:
            kwargs["max_steps"] = options.max_steps
    return Call(options, prompt, conv, kwargs)


def schema_value(text: str, shell: Any) -> Any:
    """What ``--schema`` names: a notebook variable (a dataclass, TypedDict or model class, a dict), JSON Schema
    text, or a spec string; InvalidParameterError for a name the notebook does not define."""
    if flags.VARIABLE_NAME.fullmatch(text):
        head, *rest = text.split(".")
        namespace = shell.user_ns if shell is not None else {}
        if head not in namespace:
            raise errors.InvalidParameterError(
                f"--schema {text}: no variable {head!r} in the notebook. Define the class first, or give a spec "
                "such as 'label: yes|no, reason: str' (a spec names each field with its type).",
                param="schema",
                value=text,
            )
        value = namespace[head]
        for part in rest:
            value = getattr(value, part)
        return value
    return json.loads(text) if text.lstrip().startswith("{") else text


def notebook_tools(shell: Any, names: list[str]) -> list[Any]:
    """``--tools a,b``: the functions of those names in the notebook's namespace (tool dicts are taken too)."""
    namespace = shell.user_ns if shell is not None else {}
    found: list[Any] = []
    for name in names:
        if name not in namespace:
            raise CellError(
                f"--tools: there is no {name!r} in the notebook: define the function first (def {name}...)."
            )
        value = namespace[name]
        if not callable(value) and not isinstance(value, dict):
            raise CellError(f"--tools: {name!r} is a {type(value).__name__}, not a function.")
        found.append(value)
    return found


# -- drivers ---------------------------------------------------------------------------------------------------
async def drive_async(shell: Any, call: Call, view: View, where: str | None = None) -> Any:
    """Top-level-await driver: stream on the running loop, tick the view, turn cancellation into 'stopped'.
    ``where`` (``"%%chat"``) is what the call's warnings point at, rather than the transformed cell line."""
    holder: list[Response] = []  # the Responses started; the last one is this call's (schema= may send twice)

    def on_event(ev: Any) -> None:
        if ev.kind == "start":  # each step of a tool loop starts a Response: the view follows the latest
            holder[:] = [ev.value]
        elif ev.kind in TOOL_EVENTS:  # shown at once: a sync tool function may hold the loop for a while
            view.tool_event(ev)
            if holder:
                view.update(holder[0])

    view.begin(call.model)
    here = errors.tasks_warn_here(where)  # its warnings point at the cell, not at asyncio
    with spend.cell_waits():  # the cell waits for the call: its cost question may be asked in the cell
        task = asyncio.ensure_future(client.achat(on_event=on_event, **call.kwargs))
    errors.tasks_warn_reset(here)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=TICK_S)
            if holder:
                view.update(holder[-1])
        response = task.result()
    except errors.StoppedError as e:  # a tool loop stopped inside (a KeyboardInterrupt in a tool function)
        return stopped(shell, call, view, e.partial)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task}, timeout=5)  # achat marks the Response stopped and notifies history
        return stopped(shell, call, view, holder[-1] if holder else None)
    except errors.WcodeError as e:
        return failed(shell, call, view, e, holder[-1] if holder else None)
    return finished(shell, call, view, response)


def drive_sync(shell: Any, call: Call, view: View) -> Any:
    """Sync driver: the client streams in this thread, calling the view on every event (the view throttles)."""
    holder: list[Response] = []  # the Responses started; the last one is this call's (schema= may send twice)

    def on_event(ev: Any) -> None:
        if ev.kind == "start":  # each step of a tool loop starts a Response: the view follows the latest
            holder[:] = [ev.value]
        elif ev.kind in TOOL_EVENTS:
            view.tool_event(ev)
            if holder:
                view.update(holder[0])
        elif holder:
            view.update(holder[-1])

    view.begin(call.model)
    try:
        response = client.chat(on_event=on_event, **call.kwargs)
    except errors.StoppedError as e:
        return stopped(shell, call, view, e.partial)
    except KeyboardInterrupt:  # arrived outside the client's own handler (before the request, or in the view)
        return stopped(shell, call, view, holder[-1] if holder else None)
    except errors.WcodeError as e:
        return failed(shell, call, view, e, holder[-1] if holder else None)
    return finished(shell, call, view, response)


# -- endings ---------------------------------------------------------------------------------------------------
def _keep(shell: Any, call: Call, response: Response | None) -> None:
    """Whatever arrived goes into the conversation and ``-o VAR``, complete or not."""
    if response is None:
        return
    if call.conversation is not None:
        call.conversation.add(call.prompt, response)
    if call.opts.out and shell is not None:
        shell.user_ns[call.opts.out] = response


def finished(shell: Any, call: Call, view: View, response: Response) -> Any:
    """A complete answer: final render, then the cell's result in the chosen format (none after ``;``)."""
    _keep(shell, call, response)
    view.finish(response)
    fmt = call.opts.format
    missing = response.no_answer_reason()
    if missing and fmt == "json":  # no object to return: fail the cell, as for an answer that is not JSON
        raise CellError(f"--format json: there is no answer to read: {missing}.")
    if missing and fmt != "markdown":
        return None  # the final view says why the answer is empty; an empty text or code result would not
    value: Any = response
    if fmt == "code":
        lang, code = code_blocks(response.text)
        value = CodeText(code, lang)
        if call.opts.insert and shell is not None:
            shell.set_next_input(code.rstrip("\n"), replace=False)
    elif fmt == "json":
        value = parse_json(response.text)
    elif fmt == "text":
        value = PlainText(response.text)
    if call.opts.quiet:
        return None
    return view.result(value)  # in a notebook: into the live output, which now shows the answer once


def parse_json(text: str) -> Any:
    """The answer as a Python object: bare JSON or the first fenced block."""
    candidates = [text.strip()]
    _, code = code_blocks(text)
    if code.strip() != candidates[0]:
        candidates.append(code.strip())
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    preview = text.strip()[:60]
    raise CellError(
        f"--format json: the answer is not valid JSON ({preview!r}...). It is kept in wm.last(); ask for JSON "
        'only, or add --response-format \'{"type": "json_object"}\'.'
    )


def stopped(shell: Any, call: Call, view: View, response: Response | None) -> Any:
    """Interrupted: show and keep the partial answer, then fail the cell (an interrupt stops Run All)."""
    _keep(shell, call, response)
    view.finish(response, note=None if response is not None else f"{call.model} · stopped before any answer")
    raise CellError(stopped_message(call, response))


def stopped_message(call: Call, response: Response | None) -> str:
    """What the stop kept, and where: only what really happened (an empty answer joins no conversation)."""
    from ..analysis.history import enabled

    places = ["the history"] if enabled() else []
    if response is not None:
        places.append("wm.last()")
    kept = _and(places)
    if response is not None and response.steps:  # a tool loop: its steps joined the conversation
        where = _and((["the conversation"] if call.conversation is not None else []) + places)
        return (
            f"Stopped in the tool loop, in step {len(response.steps)}. The steps so far are kept in {where}; "
            "`wm.last().turns` lists them."
        )
    if response is not None and response.text:
        where = _and((["the conversation"] if call.conversation is not None else []) + places)
        return f"Stopped. The partial answer ({len(response.text)} characters) is kept in {where}."
    unchanged = "; the conversation is unchanged" if call.conversation is not None else ""
    if response is not None and response.reasoning:
        return (
            f"Stopped while thinking, before any answer{unchanged}. The thinking so far "
            f"({len(response.reasoning)} characters) is in {kept}."
        )
    return f"Stopped before anything arrived{unchanged}."


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def failed(shell: Any, call: Call, view: View, error: errors.WcodeError, seen: Response | None) -> Any:
    """An expected failure: keep and show any partial answer, then one line saying what to do next."""
    partial = error.partial or (seen if seen is not None and (seen.text or seen.reasoning) else None)
    _keep(shell, call, partial)
    if partial is not None:
        view.finish(partial)
    else:
        view.finish(None, note=f"{call.model} · failed")
    raise CellError(errors.error_line(error))


# -- entry points ----------------------------------------------------------------------------------------------
def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def magic_name(magic: str) -> str:
    """How the user typed it: ``%%chat``, ``%%wcode``, or the one-line ``%wcode``."""
    return "%wcode" if magic == "wcode-line" else f"%%{magic}"


def _prepare_cell(shell: Any, magic: str, line: str, cell: str | None) -> tuple[Call, View]:
    name = magic_name(magic)
    try:
        if magic == "wcode-line":
            options, text = flags.parse_prompt_line(line)
        else:
            options, text = flags.parse(line), cell or ""
    except (flags.FlagError, errors.InvalidParameterError) as e:
        raise CellError(f"{name}: {e}") from None
    if magic == "wcode-line" and not text.strip():
        raise CellError("%wcode: the prompt is empty: write it after the options (%wcode --max-tokens 50 Hello).")
    try:
        call = prepare(shell, options, text, conversation=magic == "chat")
    except errors.InvalidParameterError as e:  # a placeholder that cannot be filled, a bad model name
        raise CellError(f"{name}: {e.message}") from None
    return call, make_view(shell, options.format)


async def cell_async(magic: str, line: str, cell: str | None) -> Any:
    """What a transformed ``%%chat`` / ``%%wcode`` / ``%wcode PROMPT`` cell awaits in a kernel."""
    shell = _shell()
    call, view = _prepare_cell(shell, magic, line, cell)
    if call.kwargs.get("confirm") is True and is_rich(shell):
        # buttons under each call: the cell awaits, so a click arrives (a blocking cell would never see it)
        from .approve import ButtonConfirm

        call.kwargs["confirm"] = ButtonConfirm()
    return await drive_async(shell, call, view, "%wcode" if magic == "wcode-line" else f"%%{magic}")


def cell_sync(shell: Any, magic: str, line: str, cell: str | None) -> Any:
    """The same without a running loop (terminal IPython, or the magic called from code)."""
    call, view = _prepare_cell(shell, magic, line, cell)
    return drive_sync(shell, call, view)
