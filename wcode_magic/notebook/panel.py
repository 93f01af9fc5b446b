"""``wm.panel()`` / ``%wcode panel``: every knob as a widget, the thinking and answer streamed live, a Stop that works.

Thin by design: the controls come from ``controls`` (derived from the parameter declarations), the request from
``client.achat``, the "Show code" text from ``codegen``. What lives here is the layout and the streaming view.

Why a task (design.md, "Notebook execution"): a click is handled while a request runs only if the cell that
started it has returned. So Send schedules ``achat`` as a task on the kernel's running event loop (ipykernel 7
runs comm callbacks on it) -- or on the client's worker loop when no loop runs -- and returns at once; Stop
cancels that task. ``achat`` marks the Response stopped and tells its observers (history, ``wm.last()``), and
the partial answer stays on screen. Widget updates are throttled to 15 a second and always end with the exact
final text. Errors are shown inside the panel; nothing is printed from the background.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..core import catalog
from ..core.errors import InvalidParameterError, StoppedError, WcodeError, WcodeWarning, error_line
from ..core.params import PARAMS
from ..core.session import is_bundled_local
from ..core.settings import SESSION, SETTINGS, Settings, configure
from ..core.stream import Event
from . import codegen, theme, toolview
from .controls import SCHEMA_EXAMPLE, ParamControls, schema_value, show_help
from .throttle import Throttle

if TYPE_CHECKING:
    from ..core.response import Response

OTHER = "\0other"  # the model picker's "any other id" entry
# 12 throttled pushes a second plus the first and the final one stay within 15 in any one-second window.
UPDATES_PER_SECOND = 12.0
PREVIEW_CHARS = 400  # per turn in the conversation summary


def model_label(m: catalog.Model) -> str:
    """A picker entry: id, context and price, so the choice is informed."""
    ctx = f"{m.context_label} ctx"
    if m.local:
        price = "free (local)"
    elif m.price_in is None or m.price_out is None:
        price = "price unknown"
    else:
        price = f"¥{m.price_in:g} in / ¥{m.price_out:g} out per 1K tokens"
    caveat = f" · {m.caveat}" if m.caveat else ""  # Gemma 270M: a small base model, not a chat model
    return f"{m.id} · {ctx} · {price}{caveat}"


def status_line(state: str, response: Response | None, pieces: int, now: float | None = None) -> str:
    """The status text: state, time to first token, tokens/s, tokens and cost (counted pieces while streaming)."""
    parts = [state]
    if response is None:
        return state
    if response.ttft_s is not None:
        parts.append(f"first token {response.ttft_s:.2f} s")
    usage = response.usage
    final = response.latency_s is not None
    if final and response.tokens_per_s:
        parts.append(f"{response.tokens_per_s:.0f} tok/s")
    elif response.ttft_s is not None and pieces:
        elapsed = (time.perf_counter() if now is None else now) - response.started - response.ttft_s
        if elapsed > 0:
            parts.append(f"{pieces / elapsed:.0f} tok/s")
    if usage.completion_tokens is not None:
        thinking = f" ({usage.reasoning_tokens} thinking)" if usage.reasoning_tokens else ""
        parts.append(f"{usage.completion_tokens} tokens{thinking}")
    elif pieces:
        parts.append(f"~{pieces} tokens")
    cost = response.cost
    if cost is not None:
        parts.append(f"¥{cost:.6f}".rstrip("0").rstrip(".") if cost else "¥0")
    served = response.served_note()
    if served:
        parts.append(served)
    if state == "stopped":
        parts.append(f"kept {len(response.text)} characters of answer and {len(response.reasoning)} of thinking")
    return " · ".join(parts)


def error_text(error: BaseException) -> str:
    """The words shown for a failure: the magics' own line for a WcodeError; anything else is a bug and says so."""
    if isinstance(error, WcodeError):
        return error_line(error)
    return f"{type(error).__name__}: {error} (this is a bug in wcode-magic; please report it)"


def parse_extra_body(text: str) -> dict[str, Any] | None:
    """The "extra body" box: a JSON object merged into the request (server-specific fields), or None if empty."""
    text = text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidParameterError(
            f"extra_body: {text!r} is not valid JSON ({e.msg}); extra_body takes a JSON object.",
            param="extra_body",
            value=text,
        ) from None
    if not isinstance(value, dict):
        raise InvalidParameterError(
            f"extra_body={value!r} is not allowed: extra_body takes a JSON object.", param="extra_body", value=value
        )
    return value


def _markdown(text: str) -> tuple[dict[str, Any], ...]:
    return ({"output_type": "display_data", "data": {"text/markdown": text, "text/plain": text}, "metadata": {}},)


def _pre(text: str) -> str:
    # The newline after <pre> is eaten by the HTML parser, so a leading newline of the text survives.
    return f"<pre class='wm-thinking-text' style='white-space:pre-wrap;margin:0'>\n{html.escape(text)}</pre>"


class Panel:
    """The widget tree and its behaviour. ``send``/``stop``/``wait`` drive it from code as the buttons do."""

    PLAIN = "wcode-magic panel (a live widget: run the cell in Jupyter to use it)"

    def __init__(
        self, *, session: Settings = SESSION, headers: dict[str, str] | None = None, tools: list[Any] | None = None
    ) -> None:
        import ipywidgets as w

        from ..core.toolspec import as_tools

        self.session = session
        self.headers = headers  # extra request headers, e.g. a test server's fault injection
        self.tools = list(tools or [])  # functions (and tool dicts) the model may call: the tool loop runs them
        self._tool_specs = as_tools(self.tools) if self.tools else []  # checked now, before any Send
        self.run: Any = None  # the running tool loop's record (core/toolloop.ToolRun)
        self.messages: list[dict[str, Any]] = []
        self.response: Response | None = None
        self.state = "ready"
        self.updates = 0  # throttled pushes to the widgets, for the benchmark
        self._task: asyncio.Future[None] | concurrent.futures.Future[None] | None = None
        self._pieces = 0
        self._throttle = Throttle(UPDATES_PER_SECOND)
        self._shown = (0, 0)  # lengths of reasoning and text on screen
        self._syncing = False
        self.notices: list[str] = []  # warnings raised by the last Send ("... cannot switch its thinking")
        self._catching: Any = None  # the warnings.catch_warnings context of a Send's synchronous start
        self._caught: list[Any] = []
        self._unsettled: dict[str, InvalidParameterError] = {}  # text boxes whose value the session refused

        # -- model, server, thinking
        options = [(model_label(m), m.id) for m in catalog.MODELS] + [("other model id…", OTHER)]
        self.model_pick = w.Dropdown(
            options=options, description="model", tooltip=SETTINGS["model"].help, layout=w.Layout(width="620px")
        )
        self.model_text = w.Text(
            placeholder="any model id the server knows",
            tooltip=SETTINGS["model"].help,
            continuous_update=False,
            layout=w.Layout(width="300px"),
        )
        self.base_url = w.Text(
            placeholder="auto: local server for local/* models, else wcode.net",
            description="base URL",
            tooltip=SETTINGS["base_url"].help,
            continuous_update=False,
            layout=w.Layout(width="620px"),
        )
        self.model_pick.add_class("wm-model")
        self.model_text.add_class("wm-model-id")
        self.base_url.add_class("wm-base-url")
        self.controls = ParamControls(on_error=self._param_error)

        # -- parameters, by group, plus an extra-body box for server-specific fields
        groups: dict[str, list[Any]] = {}
        for name, control in self.controls.controls.items():
            groups.setdefault(PARAMS[name].group, []).append(control.row)
        self.extra_body = w.Textarea(
            placeholder='{"ignore_eos": true}',
            description="extra body",
            tooltip="A JSON object merged into the request body: fields only some servers know.",
            continuous_update=False,
            layout=w.Layout(width="620px"),
        )
        self.extra_body.add_class("wm-extra-body")
        groups["advanced"] = [self.extra_body]
        self.tabs = w.Tab(children=[w.VBox(rows) for rows in groups.values()], titles=tuple(groups))

        # -- conversation
        self.system = w.Textarea(
            placeholder="system prompt (optional)",
            description="system",
            tooltip=SETTINGS["system"].help,
            continuous_update=False,
        )
        self.schema = w.Text(
            placeholder=f"{SCHEMA_EXAMPLE} (optional: answer as JSON of this shape)",
            description="schema",
            tooltip="Answer as JSON of this shape, read into .parsed (as %%chat --schema): a spec such as "
            f"'{SCHEMA_EXAMPLE}', or a JSON Schema object. Empty: a plain answer.",
            continuous_update=False,
        )
        self.prompt = w.Textarea(placeholder="Type a prompt, then Send", description="prompt", rows=3)
        for box in (self.system, self.schema, self.prompt):
            box.layout = w.Layout(width="620px")
        self.system.add_class("wm-system")
        self.schema.add_class("wm-schema")
        self.prompt.add_class("wm-prompt")
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.new_button = w.Button(description="New conversation", icon="file")
        self.code_button = w.Button(description="Show code", icon="code")
        for cls, button in (
            ("wm-send", self.send_button),
            ("wm-stop", self.stop_button),
            ("wm-new", self.new_button),
            ("wm-show-code", self.code_button),
        ):
            button.add_class(cls)
            button.layout.width = "auto"
        self.send_button.on_click(lambda _b: self.send())
        self.stop_button.on_click(lambda _b: self.stop())
        self.new_button.on_click(lambda _b: self.new_conversation())
        self.code_button.on_click(lambda _b: self.toggle_code())

        # -- the live view
        self.status = w.HTML(value=self._status_html())
        self.error = w.HTML()
        self.model_info = w.HTML()
        self.history_view = w.HTML()
        self.thinking_text = w.HTML()
        self.thinking = w.Accordion(children=[self.thinking_text], titles=("Thinking",))
        self.thinking.layout.display = "none"
        self.thinking_text.layout = w.Layout(max_height="240px", overflow="auto")
        self.answer = w.Output(layout=w.Layout(max_height="480px", overflow="auto"))
        self.tools_view = w.HTML(value=self._tools_html())
        self.steps_view = w.Output(layout=w.Layout(max_height="480px", overflow="auto"))
        self.code = w.Output()
        self.code.layout.display = "none"
        for cls, widget in (
            ("wm-status", self.status),
            ("wm-error", self.error),
            ("wm-history", self.history_view),
            ("wm-thinking", self.thinking),
            ("wm-answer", self.answer),
            ("wm-tools", self.tools_view),
            ("wm-steps", self.steps_view),
            ("wm-code", self.code),
        ):
            widget.add_class(cls)

        self.widget = w.VBox(
            [
                theme.style_widget(),
                w.HBox([self.model_pick, self.model_text]),
                self.model_info,
                self.base_url,
                self.controls.thinking.row,
                self.tabs,
                self.system,
                self.schema,
                self.history_view,
                self.tools_view,
                self.prompt,
                w.HBox([self.send_button, self.stop_button, self.new_button, self.code_button]),
                self.status,
                self.error,
                self.steps_view,
                self.thinking,
                self.answer,
                self.code,
            ]
        )
        self.widget.add_class("wm-panel")
        show_help(self.widget)

        self._show_settings()
        self.model_pick.observe(lambda _c: self._model_changed(), names="value")
        self.model_text.observe(lambda _c: self._model_changed(), names="value")
        self.base_url.observe(lambda _c: self._write("base_url", self.base_url.value.strip() or None), names="value")
        self.system.observe(lambda _c: self._write("system", self.system.value or None), names="value")
        self.schema.observe(lambda _c: self._schema_changed(), names="value")
        self._unbind = self.controls.bind(session)
        self._unsubscribe = session.subscribe(self._session_changed)

    # -- display ---------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kw: Any) -> Any:
        """The widget, with a one-line plain-text form: a saved notebook read without a kernel (GitHub, nbviewer)
        shows that line instead of the VBox's nested repr of every control."""
        bundle = self.widget._repr_mimebundle_(**kw)
        if isinstance(bundle, dict) and "text/plain" in bundle:
            bundle = {**bundle, "text/plain": self.PLAIN}
        return bundle

    def close(self) -> None:
        """Stop following the session and close the widgets."""
        self.stop()
        self._unbind()
        self._unsubscribe()
        self.widget.close()

    # -- settings: the panel and the magics share one session ---------------------------------------------
    def model_id(self) -> str:
        """The model the next Send uses (as sent: aliases resolved)."""
        if self.model_pick.value == OTHER:
            return self.model_text.value.strip() or self.session.resolve_model(None)
        return self.model_pick.value

    def _show_settings(self) -> None:
        """Show the session's model, server and system prompt without writing them back."""
        self._unsettled.clear()  # the boxes show the session's values again
        self._syncing = True
        try:
            model = self.session.resolve_model(None)
            known = catalog.lookup(model)
            if known is not None:
                self.model_pick.value = known.id
                self.model_text.layout.display = "none"
            else:
                self.model_pick.value = OTHER
                self.model_text.value = model
                self.model_text.layout.display = None
            self.base_url.value = self.session.base_url or ""
            self.system.value = self.session.system or ""
        finally:
            self._syncing = False
        self._model_info()

    def _model_info(self) -> None:
        model = catalog.lookup(self.model_id())
        self.controls.thinking.enable(model.thinking if model else None)
        if model is None:
            self.model_info.value = "<span class='wm-muted'>not in the catalog: no price or context known</span>"
        else:
            local = " · a small local n-gram model, not an LLM" if model.local else ""
            self.model_info.value = (
                f"<span class='wm-muted'>{html.escape(model.name)} · context {model.context:,} tokens · "
                f"thinking: {model.thinking}{local}</span>"
            )

    def _model_changed(self) -> None:
        self.model_text.layout.display = None if self.model_pick.value == OTHER else "none"
        self._model_info()
        if self.model_pick.value != OTHER or self.model_text.value.strip():
            self._write("model", self.model_id())

    def _write(self, name: str, value: Any) -> None:
        """A text box's value into the session. The session refuses a bad one (the same rule as ``configure`` and
        ``%wcode set``): the box keeps what was typed, the refusal shows, and Send stays refused until it is
        fixed, so a request never goes to the previous server by surprise."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self.session.update(**{name: value})
        except InvalidParameterError as e:
            self._unsettled[name] = e
            self._refuse(e.message)
        else:
            if self._unsettled.pop(name, None) is not None:
                self.error.value = ""
        finally:
            self._syncing = False

    def _session_changed(self, name: str, value: Any) -> None:
        if not self._syncing and name in ("model", "base_url", "system"):
            self._show_settings()

    def _schema_changed(self) -> None:
        """Check the schema box as it is left (not only at Send), as the parameter boxes are."""
        try:
            schema_value(self.schema.value)
        except InvalidParameterError as e:
            self._unsettled["schema"] = e
            self._refuse(e.message)
        else:
            if self._unsettled.pop("schema", None) is not None:
                self.error.value = self._error_html(None)

    def _param_error(self, error: InvalidParameterError | None) -> None:
        self.error.value = self._error_html(None if error is None else error.message)

    # -- requests -------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def send(self, prompt: str | None = None) -> asyncio.Future[None] | concurrent.futures.Future[None] | None:
        """Start a request with the prompt box (or ``prompt``); returns the running task, None if refused."""
        if self.running:
            return self._task
        text = self.prompt.value if prompt is None else prompt
        if not text.strip():
            self._refuse("Type a prompt first.")
            return None
        refused = [*self._unsettled.values(), *self.controls.errors()]
        if refused:
            self._refuse(refused[0].message)
            return None
        try:
            extra = parse_extra_body(self.extra_body.value)
            schema = schema_value(self.schema.value)
        except InvalidParameterError as e:
            self._refuse(e.message)
            return None
        self._begin()
        coro = self._run(text, extra, schema)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here (a plain script): use the client's worker loop
            from ..core.client import LOOP

            self._task = asyncio.run_coroutine_threadsafe(coro, LOOP.loop())
        else:
            self._task = loop.create_task(coro)
        self._task.add_done_callback(self._settle)
        return self._task

    def _settle(self, task: asyncio.Future[None] | concurrent.futures.Future[None]) -> None:
        """A Stop that lands before the task's first step cancels it without running ``_run``'s handlers: end the
        Send here, so the panel does not stay "waiting" with Send disabled."""
        if task.cancelled() and self.state == "waiting" and self.response is None:
            self._end("stopped", {})

    def stop(self) -> None:
        """Cancel the running request; the partial answer stays and is recorded as stopped."""
        if self.running and self._task is not None:
            self._task.cancel()

    async def wait(self) -> None:
        """Until the running request (if any) has ended, whatever the loop it runs on."""
        task = self._task
        if task is None:
            return
        waiting = asyncio.wrap_future(task) if isinstance(task, concurrent.futures.Future) else task
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    def new_conversation(self) -> None:
        """Forget the conversation (and stop a running request)."""
        self.stop()
        self.messages = []
        self.response = None
        self.state = "ready"
        self._shown = (0, 0)
        self.thinking_text.value = ""
        self.thinking.layout.display = "none"
        self.answer.outputs = ()
        self.notices = []
        self.error.value = ""
        self.status.value = self._status_html()
        self._show_history()

    def code_text(self, prompt: str | None = None) -> str:
        """The ``%%chat`` cell and ``wm.chat`` call (Markdown) that send what Send would send.

        Where they cannot: the cell gets ``--new`` when the magics' default conversation has turns (a plain
        ``%%chat`` would continue it, the panel's first turn does not), and a note says when this panel's own
        conversation has turns, which neither form sends.
        """
        from ..core.conversations import CONVERSATIONS

        text = self.prompt.value if prompt is None else prompt
        model = self.model_id()
        magics = CONVERSATIONS.find()
        base_url = self.session.route(model) or self.session.base_url
        return codegen.show(
            text or "Your prompt here",
            model=model,
            system=self.session.system,
            params=self.controls.values(),
            base_url=base_url,
            extra_body=parse_extra_body(self.extra_body.value),
            schema=schema_value(self.schema.value),
            new=magics is not None and (bool(magics.messages) or magics.system is not None),
            earlier_turns=len(self.messages) // 2,
            bundled_local=is_bundled_local(base_url),
            tools=[t.__name__ for t in self.tools if callable(t) and hasattr(t, "__name__")],
        )

    def toggle_code(self) -> None:
        if self.code.layout.display != "none":
            self.code.layout.display = "none"
            return
        try:
            self.code.outputs = _markdown(self.code_text())
        except InvalidParameterError as e:
            self._refuse(e.message)
            return
        self.code.layout.display = None

    # -- the stream -----------------------------------------------------------------------------------------
    def _begin(self) -> None:
        self.response = None
        self.run = None
        self.steps_view.outputs = ()
        self._pieces = 0
        self._shown = (0, 0)
        self._throttle = Throttle(UPDATES_PER_SECOND)
        self.state = "waiting"
        self.notices = []
        self.error.value = ""
        self.thinking_text.value = ""
        self.thinking.layout.display = "none"
        self.answer.outputs = ()
        self.status.value = self._status_html()
        self.send_button.disabled = True
        self.stop_button.disabled = False

    async def _run(self, prompt: str, extra_body: dict[str, Any] | None, schema: Any = None) -> None:
        from ..core.client import achat

        turn = {"role": "user", "content": prompt}
        model = self.model_id()
        self._catch_warnings()
        try:
            await achat(
                [*self.messages, turn],
                model=model,
                on_event=self._on_event,
                headers=self.headers,
                extra_body=extra_body,
                **({"schema": schema} if schema is not None else {}),
                **self._tool_kw(),
            )
        except (asyncio.CancelledError, StoppedError):  # Stop: our own task, so the cancel ends here (or a
            self._release_warnings()  # replayed answer that was stopped when it was recorded)
            # A Stop that lands after the last token (while observers run) stopped nothing: the answer is whole.
            whole = self.response is not None and self.response.status == "done"
            self._end("done" if whole else "stopped", turn)
        except Exception as e:  # shown in the panel; a background task has no cell to raise into
            self._release_warnings()
            self._end("error", turn, e)
        else:
            self._end("done", turn)

    # Warnings (a parameter the model ignores, a thinking switch it lacks) come from the request's validation,
    # which runs before achat's first await: between the task's start and the "start" event (or an exception
    # raised before it) nothing else runs on this thread, so recording warnings over just that span catches this
    # Send's and no one else's. Printed instead, they would go to a comm message's stderr, which JupyterLab drops.
    def _catch_warnings(self) -> None:
        self._catching = warnings.catch_warnings(record=True)
        self._caught = self._catching.__enter__()
        warnings.simplefilter("always", WcodeWarning)  # every Send says it, not just the first

    def _release_warnings(self) -> None:
        if self._catching is None:
            return
        self._catching.__exit__(None, None, None)
        self._catching = None
        for w in self._caught:
            if issubclass(w.category, WcodeWarning):
                if str(w.message) not in self.notices:
                    self.notices.append(str(w.message))
            else:  # not ours to explain: shown as it would have been
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        self._caught = []
        if self.notices:
            self.error.value = self._error_html(None)

    def _on_event(self, ev: Event) -> None:
        # Called for every event of the stream (tens of thousands): the common case is tested first.
        kind = ev[0]
        if kind == "content":
            self.state = "answering"
        elif kind == "reasoning":
            if self.state == "waiting":
                self.state = "thinking"
        else:
            if kind == "start":
                if self.run is not None and self.response is not None:  # the next step of a tool loop
                    self._next_step()
                self.response = ev[1]
                self._release_warnings()
            elif kind == "tools":
                self.run = ev[1]
            elif kind in ("tool_call_ready", "tool_result"):
                self.state = "running tools"
                self._push_steps()
            return
        self._pieces += 1
        if self._throttle.ready():
            self._push()

    def _push(self) -> None:
        """Send what changed to the widgets (one throttled update)."""
        r = self.response
        if r is None:
            return
        reasoning, text = r.reasoning, r.text
        if len(reasoning) != self._shown[0]:
            self.thinking_text.value = _pre(reasoning)
            if self.thinking.layout.display == "none":
                self.thinking.layout.display = None
                self.thinking.selected_index = 0  # open while it streams
        if len(text) != self._shown[1]:
            self.answer.outputs = _markdown(text)
            if self.thinking.selected_index == 0 and reasoning:
                self.thinking.selected_index = None  # collapse once the answer starts
        self._shown = (len(reasoning), len(text))
        self.status.value = self._status_html()
        self.updates += 1

    def _push_steps(self) -> None:
        """A tool loop's steps so far, above the step that streams (the one ending in calls is drawn with them)."""
        run = self.run
        if run is None:
            return
        shown = self.response
        if shown is not None and shown.tool_calls and any(shown is s for s in run.steps):
            shown = None  # its calls are drawn with the steps; nothing streams below yet
            self.thinking.layout.display = "none"
            self.answer.outputs = ()
        running = self.state not in ("done", "stopped", "error")
        steps = toolview.markdown(run.turns, run.steps, shown, running=running)
        self.steps_view.outputs = _markdown(steps) if steps else ()
        self.status.value = self._status_html()

    def _next_step(self) -> None:
        """A new step starts streaming: the thinking and answer areas are its own."""
        self._shown = (0, 0)
        self.thinking_text.value = ""
        self.thinking.layout.display = "none"
        self.answer.outputs = ()

    def _tool_kw(self) -> dict[str, Any]:
        return {"tools": self.tools} if self.tools else {}

    def _tools_html(self) -> str:
        if not self.tools:
            return ""
        items = []
        for t in self._tool_specs:
            args = ", ".join(t.parameters.get("properties") or {})
            runs = "" if t.runs else " <i>(described only: not run here)</i>"
            about = f" — {html.escape(t.description.splitlines()[0])}" if t.description else ""
            items.append(f"<li><code>{html.escape(t.name)}({html.escape(args)})</code>{about}{runs}</li>")
        return f"<details><summary>Tools the model may call: {len(items)}</summary><ul>{''.join(items)}</ul></details>"

    def _end(self, state: str, turn: dict[str, Any], error: BaseException | None = None) -> None:
        r = self.response
        self.state = state
        self._push()  # the exact final text, whatever the throttle said
        if self.run is not None:
            self._push_steps()
        missing = r.no_answer_reason() if r is not None and state == "done" else None
        if missing:  # an empty answer area would not say that the budget went to the thinking
            self.answer.outputs = _markdown(f"**No answer:** {html.escape(missing)}.")
        self.status.value = self._status_html()
        if r is not None and state == "done" and r.schema is not None:
            self._schema_notices(r)
        if error is not None:
            self.error.value = self._error_html(error_text(error))
        keep = r is not None and (state == "done" or (state == "stopped" and (r.text or r.tool_messages)))
        if keep and r is not None:
            # A stopped answer joins the conversation as far as it got: the next turn continues from what was seen.
            # After a tool loop that is every message it added (calls, results, answer).
            self.messages += [turn, *(r.tool_messages or [r.message])]
            self.prompt.value = ""
            self._show_history()
        self.send_button.disabled = False
        self.stop_button.disabled = True

    def _schema_notices(self, r: Response) -> None:
        """With a schema: say when the server refused json_schema (json_object was sent instead; the warning itself
        is raised inside the task, where no cell shows it) and when the answer does not fit."""
        said = []
        if (r.request.get("response_format") or {}).get("type") == "json_object":
            said.append(
                f"{r.request.get('model') or r.model} at {r.base_url} refused response_format json_schema: json_object was "
                "sent with the schema in the instructions, and the answer checked here."
            )
        if r.parse_error is not None:
            said.append(r.parse_error.message)
        self.notices += [n for n in said if n not in self.notices]
        if said:
            self.error.value = self._error_html(None)

    # -- small views ----------------------------------------------------------------------------------------
    def _status_html(self) -> str:
        text = status_line(self.state, self.response, self._pieces)
        return f"<span class='wm-state wm-state-{self.state}'>{html.escape(text)}</span>"

    def _error_html(self, message: str | None) -> str:
        """The error area: this Send's warnings (amber), then the error or refusal (red), if any."""
        parts = [f"<div class='wm-warning'>⚠ {html.escape(n)}</div>" for n in self.notices]
        if message:
            parts.append(f"<div class='wm-error-text'>{html.escape(message)}</div>")
        return "".join(parts)

    def _refuse(self, message: str) -> None:
        self.error.value = self._error_html(message)

    def _show_history(self) -> None:
        turns = len(self.messages) // 2
        if not turns:
            self.history_view.value = ""
            return
        lines = []
        for m in self.messages:
            text = str(m.get("content") or "")
            short = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
            who = "you" if m["role"] == "user" else "model"
            lines.append(f"<div><b>{who}:</b> {html.escape(short)}</div>")
        self.history_view.value = (
            f"<details><summary>Conversation so far: {turns} exchange{'s' if turns > 1 else ''} "
            f"(New conversation clears it)</summary>{''.join(lines)}</details>"
        )


def panel(**kw: Any) -> Panel:
    """Show the parameter panel. Keywords set session values first (``model``, ``system``, ``base_url``,
    any parameter such as ``temperature=0.2``), ``prompt`` fills the prompt box, ``headers`` go with
    every request, ``tools`` (Python functions) are listed and the model may call them: each step shows as it
    happens. The panel and ``%%chat`` share the session: a slider change is what the next cell uses."""
    prompt = kw.pop("prompt", None)
    headers = kw.pop("headers", None)
    tools = kw.pop("tools", None)
    if kw:
        configure(**kw)
    p = Panel(headers=headers, tools=tools)
    if prompt:
        p.prompt.value = prompt
    return p
