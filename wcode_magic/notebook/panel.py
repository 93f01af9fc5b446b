"""``wm.panel()`` / ``%wcode panel``: a chat with every knob as a widget, streamed live, with a Stop that works.

Thin by design: the controls come from ``controls`` (derived from the parameter declarations), the request from
``client.achat``, the "Show code" text from ``codegen`` (laid out by ``codeview``), each exchange's widgets from
``turn``. What lives here is the layout and the streaming.

Layout (chat first): the transcript (a scroller of fixed maximum height), the prompt box and the buttons right
under it, then the status, notices, a summary of the model and parameters, and the code. The settings (model,
server, thinking, parameter tabs, system, schema, extra body) are a column that starts closed and opens beside
the chat where the cell is wide enough, else below it: nothing that opens, closes, grows or switches tabs sits
above Send, so Send never moves, and at 1280x800 and 800x800 it is in view after Run All.

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
import contextlib
import html
import json
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..core import budget, catalog
from ..core.errors import InvalidParameterError, StoppedError, WcodeError, WcodeWarning, error_line, error_text
from ..core.params import PARAMS
from ..core.session import is_bundled_local
from ..core.settings import SESSION, SETTINGS, Settings, configure
from ..core.stream import Event
from . import codegen, codeview, spend, theme, toolview
from .controls import SCHEMA_EXAMPLE, ParamControls, schema_value, show_help
from .thinking import markdown
from .throttle import Throttle
from .turn import Turn

if TYPE_CHECKING:
    from ..core.response import Response

OTHER = "\0other"  # the model picker's "any other id" entry
# 12 throttled pushes a second plus the first and the final one stay within 15 in any one-second window.
UPDATES_PER_SECOND = 12.0
# Room for the prompt and the buttons below the transcript in a laptop-high window.
TRANSCRIPT_HEIGHT = "min(520px, 55vh)"


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


def heat_map(response: Response) -> str:
    """The finished answer's token heat map (``render.show_tokens``), under the answer in its turn."""
    from ..analysis.render import show_tokens

    view = show_tokens(response)
    return f"<details open class='wm-heatmap-details'><summary>Token probabilities</summary>{view.html}</details>"


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


def route_html(session: Settings, model_id: str, url: str | None) -> str:
    """The note beside the base-URL box: where this model's request really goes (``url``, from
    ``Settings.destination``; None: the bundled server, not started yet), and why when that is not the box's own
    server (the bundled server serves only local/* models, wcode.net only its catalog)."""
    if url is None:
        where = "the bundled local server (started by the first Send)"
    elif is_bundled_local(url):
        where = f"{url} (the bundled local model on this machine)"
    else:
        where = url
    why = ""
    if url is not None and session.base_url and url.rstrip("/") != session.base_url.rstrip("/"):
        why = " — not the box's server, which does not serve this model"
    return f"<span class='wm-note'>→ {html.escape(model_id)} goes to {html.escape(where)}{why}</span>"


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
            options=options,
            description="model",
            tooltip=SETTINGS["model"].help,
            layout=w.Layout(width="100%", max_width="620px", margin="2px 0"),  # no side margin: 100% fits
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
            layout=w.Layout(width="100%", max_width="620px", margin="2px 0"),  # no side margin: 100% fits
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
            layout=w.Layout(width="100%", max_width="620px", margin="2px 0"),  # no side margin: 100% fits
        )
        self.extra_body.add_class("wm-extra-body")
        groups["advanced"] = [self.extra_body]
        self.tabs = w.Tab(children=[w.VBox(rows) for rows in groups.values()], titles=tuple(groups))

        # -- conversation settings
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
        for box in (self.system, self.schema):
            box.layout = w.Layout(width="100%", max_width="620px", margin="2px 0")
        self.system.add_class("wm-system")
        self.schema.add_class("wm-schema")

        # -- the composer: prompt and buttons, right under the transcript
        self.prompt = w.Textarea(
            placeholder="Type a prompt, then Send",
            tooltip="The next message of the conversation (the settings beside or below apply to it).",
            rows=3,
            layout=w.Layout(width="100%", margin="2px 0"),  # no side margin: it would overflow the column
        )
        self.prompt.add_class("wm-prompt")
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.new_button = w.Button(description="New conversation", icon="file")
        self.settings_button = w.ToggleButton(description="Settings", icon="sliders", value=False)
        self.code_button = w.ToggleButton(description="Show code", icon="code", value=False)
        self.compare_button = w.ToggleButton(description="Compare", icon="columns", value=False)
        # the compare mode's models (below the buttons: showing them never moves Send)
        self.compare_pick = w.SelectMultiple(
            options=[(model_label(m), m.id) for m in catalog.MODELS],
            rows=min(6, len(catalog.MODELS)),
            description="compare",
            tooltip="The models Send asks at once, side by side (as %%compare): Ctrl/Shift-click picks several.",
            layout=w.Layout(width="100%", max_width="620px", margin="2px 0", display="none"),
        )
        self.compare_pick.add_class("wm-compare-pick")
        self.compare_view: Any = None  # the last compare's CompareView
        self.compared: Any = None  # ... and its DataFrame (the one wm.compare returns)
        helps = {
            self.send_button: "Send the prompt with the settings shown (the conversation so far goes with it).",
            self.stop_button: "Stop the answer: what arrived so far is kept.",
            self.new_button: "Start over: forget this conversation.",
            self.settings_button: "Model, server, thinking, every parameter, system prompt, schema.",
            self.code_button: "The %%chat cell and the wm.chat call that send what Send sends, kept up to date.",
            self.compare_button: "Send to several models at once, side by side, and keep the table wm.compare returns.",
        }
        for cls, button in (
            ("wm-send", self.send_button),
            ("wm-stop", self.stop_button),
            ("wm-new", self.new_button),
            ("wm-settings-toggle", self.settings_button),
            ("wm-show-code", self.code_button),
            ("wm-compare-toggle", self.compare_button),
        ):
            button.add_class(cls)
            button.tooltip = helps[button]
            button.layout = w.Layout(width="auto", min_width="fit-content", flex="0 0 auto")
        self.send_button.on_click(lambda _b: self.send())
        self.stop_button.on_click(lambda _b: self.stop())
        self.new_button.on_click(lambda _b: self.new_conversation())
        self.settings_button.observe(lambda _c: self._toggle_settings(), names="value")
        self.code_button.observe(lambda _c: self._toggle_code(), names="value")
        self.compare_button.observe(lambda _c: self._toggle_compare(), names="value")

        # -- the transcript: old turns stay as they were; only the live turn (the last) changes
        self.turn = Turn()
        self.turns = w.VBox([self.turn.box], layout=w.Layout(flex="0 0 auto"))  # grows; the transcript scrolls
        self.turns.add_class("wm-turns")
        # column-reverse pins the scroll position to the bottom while the answer grows, and stops pinning as soon
        # as the reader scrolls up (the browser keeps the distance from the bottom, and scroll anchoring the text).
        self.transcript = w.Box(
            [self.turns],
            layout=w.Layout(display="flex", flex_flow="column-reverse", overflow="auto", max_height=TRANSCRIPT_HEIGHT),
        )
        self.transcript.add_class("wm-transcript")

        # -- status, notices, code, summary: below the buttons, so nothing they show moves Send
        self.status = w.HTML(value=self._status_html())
        self.error = w.HTML()
        self.summary = w.HTML()
        self.model_info = w.HTML()
        self.route_note = w.HTML()
        self.tools_view = w.HTML(value=self._tools_html())
        self.code = w.HTML()
        self.code.layout.display = "none"
        for cls, widget in (
            ("wm-status", self.status),
            ("wm-error", self.error),
            ("wm-summary", self.summary),
            ("wm-model-info", self.model_info),
            ("wm-route", self.route_note),
            ("wm-tools", self.tools_view),
            ("wm-code", self.code),
        ):
            widget.add_class(cls)

        buttons = w.HBox(
            [
                self.send_button,
                self.stop_button,
                self.new_button,
                self.settings_button,
                self.code_button,
                self.compare_button,
            ],
            layout=w.Layout(flex_flow="row wrap"),
        )
        buttons.add_class("wm-buttons")
        chat = w.VBox(
            [
                self.transcript,
                self.prompt,
                buttons,
                self.compare_pick,
                self.status,
                self.error,
                self.summary,
                self.tools_view,
                self.code,
            ],
            layout=w.Layout(flex="1 1 380px", min_width="0"),
        )
        chat.add_class("wm-chat")
        self.settings = w.VBox(
            [
                w.HBox([self.model_pick, self.model_text], layout=w.Layout(flex_flow="row wrap")),
                self.model_info,
                w.HBox([self.base_url, self.route_note], layout=w.Layout(flex_flow="row wrap")),
                self.controls.thinking.row,
                self.tabs,
                self.system,
                self.schema,
            ],
            # beside the chat from a ~800 px cell (1280 px JupyterLab with its file browser open); a long tab
            # scrolls inside the column instead of stretching the page
            layout=w.Layout(flex="1 1 400px", min_width="0", max_height="80vh", overflow="auto", display="none"),
        )
        self.settings.add_class("wm-settings")
        # Side by side where the cell is wide enough, else the settings wrap below: either way Send stays put.
        self.widget = w.Box(
            [theme.style_widget(), chat, self.settings],
            layout=w.Layout(display="flex", flex_flow="row wrap", align_items="flex-start"),
        )
        self.widget.add_class("wm-panel")
        show_help(self.widget)

        self._show_settings()
        self.model_pick.observe(lambda _c: self._model_changed(), names="value")
        self.model_text.observe(lambda _c: self._model_changed(), names="value")
        self.base_url.observe(lambda _c: self._write("base_url", self.base_url.value.strip() or None), names="value")
        self.system.observe(lambda _c: self._write("system", self.system.value or None), names="value")
        self.schema.observe(lambda _c: self._schema_changed(), names="value")
        for box in (self.prompt, self.extra_body, self.compare_pick):
            box.observe(lambda _c: self._refresh_code(), names="value")
        self._unbind = self.controls.bind(session)
        self._unsubscribe = session.subscribe(self._session_changed)
        self._show_summary()

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
        self._show_route()
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
        elif name == "base_url":
            self._show_route()
        self._show_summary()
        self._refresh_code()

    def _show_route(self) -> None:
        """The base-URL box's note and placeholder: where the selected model's request really goes."""
        model = self.model_id()
        try:
            url = self.session.destination(model)
        except WcodeError as e:
            self.route_note.value = f"<span class='wm-note wm-route-error'>{html.escape(error_line(e))}</span>"
            url = None
        else:
            self.route_note.value = route_html(self.session, model, url)
        self.base_url.placeholder = f"auto: {url}" if url else "auto: the bundled local server for local/* models"

    def _show_summary(self) -> None:
        """One line under the buttons: the model and what is sent besides defaults, with the settings closed."""
        try:
            params = self.controls.values()
        except InvalidParameterError:
            params = {}
        sent = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in params.items())
        text = f"{self.model_id()} · {sent or 'every parameter at its default'}"
        self.summary.value = f"<span class='wm-note' style='overflow-wrap:anywhere'>{html.escape(text)}</span>"

    def _schema_changed(self) -> None:
        """Check the schema box as it is left (not only at Send), as the parameter boxes are."""
        self._refresh_code()
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
        self._begin(text)
        coro = self._run_compare(text, extra, schema) if self.compare_button.value else self._run(text, extra, schema)
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
        """Forget the conversation (and stop a running request): the transcript starts empty."""
        self.stop()
        self.messages = []
        self.response = None
        self.state = "ready"
        self._shown = (0, 0)
        self.turn = Turn()
        self.turns.children = (self.turn.box,)
        self.notices = []
        self.error.value = ""
        self.status.value = self._status_html()
        self._refresh_code()

    # The live turn's widgets (tests and benchmarks watch them).
    @property
    def thinking(self) -> Any:
        return self.turn.thinking

    @property
    def thinking_text(self) -> Any:
        return self.turn.thinking_text

    @property
    def answer(self) -> Any:
        return self.turn.answer

    @property
    def steps_view(self) -> Any:
        return self.turn.steps

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
            models=self._compared_models() if self.compare_button.value else (),
        )

    def _compared_models(self) -> list[str]:
        return list(self.compare_pick.value) or [self.model_id()]

    def toggle_code(self) -> None:
        """Show or hide the code (as the "Show code" button does)."""
        self.code_button.value = not self.code_button.value

    def _toggle_code(self) -> None:
        if not self.code_button.value:
            self.code.layout.display = "none"
            return
        try:
            self.code.value = codeview.render(self.code_text())
        except InvalidParameterError as e:
            self._refuse(e.message)
            self.code_button.value = False
            return
        self.code.layout.display = None

    def _refresh_code(self) -> None:
        """Keep the shown code in step with every change (model, parameters, boxes, prompt, conversation)."""
        if self.code.layout.display == "none":
            return
        try:
            self.code.value = codeview.render(self.code_text())
        except InvalidParameterError as e:
            self.code.value = f"<div class='wm-note'>No code while this is not valid: {html.escape(e.message)}</div>"

    def _toggle_settings(self) -> None:
        """The settings open beside the transcript (or below it in a narrow cell): Send does not move."""
        self.settings.layout.display = "flex" if self.settings_button.value else "none"

    # -- the stream -----------------------------------------------------------------------------------------
    def _begin(self, prompt: str) -> None:
        self.response = None
        self.run = None
        self._pieces = 0
        self._shown = (0, 0)
        self._throttle = Throttle(UPDATES_PER_SECOND)
        self.state = "waiting"
        self.notices = []
        self.error.value = ""
        if not self.turn.asked:  # the empty turn of a new conversation
            self.turn.ask(prompt)
        else:  # earlier turns stay as they are; only this one changes from now on
            self.turn = Turn(prompt)
            self.turns.children = (*self.turns.children, self.turn.box)
        self.status.value = self._status_html()
        self.send_button.disabled = True
        self.stop_button.disabled = False

    async def _run(self, prompt: str, extra_body: dict[str, Any] | None, schema: Any = None) -> None:
        from ..core.client import achat

        turn = {"role": "user", "content": prompt}
        model = self.model_id()
        try:
            approved = await self._may_spend([*self.messages, turn], model, extra_body)
            if approved is False:
                self._end("not sent", turn)
                return
            self._catch_warnings()
            # approved here: the client does not ask again (it cannot: a background task has no cell to ask in)
            with budget.covered() if approved else contextlib.nullcontext():
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
            whole = self.response is not None and self.response.status == "done"  # a tool loop's too
            self._end("done" if whole else "stopped", turn)
        except Exception as e:  # shown in the panel; a background task has no cell to raise into
            self._release_warnings()
            self._end("error", turn, e)
        else:
            self._end("done", turn)

    def _toggle_compare(self) -> None:
        """Compare mode on: pick the models (the panel's own first); Send then streams them side by side."""
        on = self.compare_button.value
        self.compare_pick.layout.display = None if on else "none"
        known = catalog.lookup(self.model_id())
        if on and not self.compare_pick.value and known is not None:
            self.compare_pick.value = (known.id,)
        self._refresh_code()

    async def _run_compare(self, prompt: str, extra_body: dict[str, Any] | None, schema: Any = None) -> None:
        """Send mode "Compare": the prompt to every picked model at once, in columns in this turn (a
        ``CompareView``, as ``%%compare``), with the panel's settings. A compare stands apart from the conversation
        (each run is a one-shot prompt), so nothing joins ``messages``; its table is ``self.compared``."""
        from .compareview import CompareView

        kw: dict[str, Any] = {"headers": self.headers} if self.headers else {}
        if extra_body:
            kw["extra_body"] = extra_body
        if schema is not None:
            kw["schema"] = schema
        try:
            view = CompareView(prompt, self._compared_models(), **kw)
        except WcodeError as e:
            self._end_compare("error", e)
            return
        self.compare_view = view
        self._show_question(view.widget)
        try:
            approved = await self._ask_budget(view.plan.bodies, "this compare")
            if approved is False:
                view.stop()
                self._end_compare("not sent")
                return
            self.state = "comparing"
            self.status.value = self._status_html()
            with budget.covered() if approved else contextlib.nullcontext():
                view.start()  # the runs' task copies this context: approved once for all of them
            self.compared = await view.wait()
        except asyncio.CancelledError:  # Stop: Stop all, keep what arrived
            view.stop()
            self.compared = await view.wait()
            self._end_compare("stopped")
        else:
            self._end_compare("stopped" if view.stopped else "done")

    def _end_compare(self, state: str, error: BaseException | None = None) -> None:
        self.state = state
        said = state if error is not None else f"{state} · {self.compare_view.summary()}"
        self.status.value = f"<span class='wm-state wm-state-{state}'>{html.escape(said)}</span>"
        self.turn.footer.value = self.status.value
        if error is not None or self.notices:
            self.error.value = self._error_html(None if error is None else error_text(error))
        if state == "done":
            self.prompt.value = ""
        self.send_button.disabled = False
        self.stop_button.disabled = True

    async def _may_spend(self, messages: list[dict[str, Any]], model: str, extra_body: Any) -> bool | None:
        """The cost check before a Send (core/budget.py): a prompt over ``warn_prompt_tokens`` on a priced model, or
        a worst case above what is left of the session's budget, is asked about with two buttons in this turn
        (a background task cannot prompt on stdin); True to send. A request the spine refuses is let through to
        ``achat``, which raises its own error into the panel. None: nothing to ask."""
        from ..core.client import build_request

        try:
            with warnings.catch_warnings():  # said once, by achat's own validation (_catch_warnings shows it)
                warnings.simplefilter("ignore", WcodeWarning)
                body = build_request(
                    messages,
                    model=model,
                    system=self.session.system,
                    stream=True,
                    extra_body=extra_body,
                    call_params={},
                )
        except WcodeError:
            return None
        allowed = await self._ask_budget([body], "this send")
        if allowed is False:
            self.error.value = self._error_html(None)
        return allowed

    async def _ask_budget(self, bodies: list[dict[str, Any]], what: str) -> bool | None:
        """The cost check's question for these request bodies, asked with two buttons in this turn: True to send,
        False when declined (the reason kept in ``notices``), None when there is nothing to ask."""
        question = budget.question(bodies, what)
        if question is None:
            return None
        self.state = "asking"
        self.status.value = self._status_html()
        allowed = await spend.ask_with_buttons(question, self._show_question)
        if not allowed:
            self.notices.append("Not sent: you declined. " + question.removesuffix(" Send anyway?"))
        return allowed

    def _show_question(self, box: Any) -> None:
        self.turn.box.children = (*self.turn.box.children, box)

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
            if self.state != "answering":
                self.turn.started_answer()
                self.state = "answering"
        elif kind == "reasoning":
            if self.state == "waiting":
                self.turn.started_thinking()
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
            self.turn.show_thinking(reasoning)
        if len(text) != self._shown[1]:
            self.turn.show_live(text)
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
            self.turn.clear()
        running = self.state not in ("done", "stopped", "error")
        steps = toolview.markdown(run.turns, run.steps, shown, running=running)
        self.turn.steps.outputs = markdown(steps) if steps else ()
        self.status.value = self._status_html()

    def _next_step(self) -> None:
        """A new step starts streaming: the thinking and answer areas are its own."""
        self._shown = (0, 0)
        self.turn.clear()

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
            self.turn.show_answer(f"**No answer:** {html.escape(missing)}.")
        elif r is not None and self.turn.live.value:  # the streamed text, now as Markdown
            self.turn.show_answer(r.text)
        self.turn.end_thinking()
        self.status.value = self.turn.footer.value = self._status_html()
        if r is not None and state in ("done", "stopped") and r.request.get("logprobs"):
            self.turn.tokens.value = heat_map(r)
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
        self.send_button.disabled = False
        self.stop_button.disabled = True
        self._refresh_code()

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
