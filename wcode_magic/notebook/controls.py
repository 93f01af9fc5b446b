"""One panel control per request parameter, derived from ``params.PARAMS``, and the mapping to session values.

Nothing here restates a range, a default or a help text: the widget kind, bounds, step, tooltip and the
"default" marker all come from the ``Param`` declaration. A control left at its documented default (or empty)
means "not set", so it is not sent and the server's own default applies, exactly as in ``%%chat``.

The value mapping (``to_widget`` / ``from_widget``) is pure and tested without widgets; ``ParamControls``
builds the ipywidgets (imported lazily) and keeps them in step with ``SESSION.params`` without feedback loops.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidParameterError
from ..core.params import EFFORTS, PARAMS, Param

if TYPE_CHECKING:
    import ipywidgets

# The thinking switch is a composite control (switch + effort), built by ThinkingControl, not per-Param.
COMPOSITE = frozenset({"reasoning"})
UNSET = ""  # what an empty text box or an "unset" choice holds
# Fit (issue 16: at 800 px sliders shrank to a dot): a control's box stays between these and its row wraps
# instead; 360 px leaves a slider's track >= 100 px beside its 150 px description and its readout, and in a
# narrower notebook the control takes the row's whole width (less its 2 px margins) rather than sticking out.
DESCRIPTION_WIDTH = "150px"
CONTROL_MIN, CONTROL_MAX = "min(calc(100% - 4px), 360px)", "480px"
ROW: dict[str, str] = {"flex_flow": "row wrap", "align_items": "center", "width": "100%"}


def widget_kind(p: Param) -> str:
    """Which widget shows this parameter: the kind and the bounds decide."""
    if p.kind == "float":
        return "float_slider" if p.min is not None and p.max is not None else "text"
    if p.kind == "int":
        # Unbounded ints (seed, max_tokens, top_k) need an "unset" state a slider cannot show: a text box.
        return "int_slider" if p.min is not None and p.max is not None else "text"
    if p.kind == "bool":
        return "checkbox" if p.default is not None else "tristate"
    if p.kind == "enum":
        return "dropdown"
    if p.kind in ("stop", "object", "array"):
        return "textarea"
    return "text"


def _decimals(step: float | None) -> int:
    if not step:
        return 6
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0


def default_text(p: Param) -> str:
    """How the documented default reads next to the control."""
    if p.default is None:
        return "not set"
    if isinstance(p.default, bool):
        return "true" if p.default else "false"
    if isinstance(p.default, float):
        return format(p.default, "g")
    return str(p.default)


def tooltip(p: Param) -> str:
    """Hover text: the seed pages' help in English and Chinese, the default and the allowed values."""
    return f"{p.help}\n{p.help_zh}\nDefault: {default_text(p)}. Allowed: {p.allowed}."


def to_widget(p: Param, value: Any) -> Any:
    """The widget value that shows a session value (None: the documented default, or empty)."""
    kind = widget_kind(p)
    if kind in ("float_slider", "int_slider"):
        return p.default if value is None else value
    if kind == "checkbox":
        return bool(p.default if value is None else value)
    if kind == "tristate":
        return UNSET if value is None else ("true" if value else "false")
    if kind == "dropdown":
        return p.default if value is None else value
    if value is None:
        return UNSET
    if p.kind == "stop":
        items = [value] if isinstance(value, str) else list(value)
        if any("\n" in s or s != s.strip() for s in items):
            return json.dumps(value, ensure_ascii=False)  # a line per string cannot show these exactly
        return "\n".join(items)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def from_widget(p: Param, wvalue: Any) -> Any:
    """The value to send for a widget value, or None when it is at the documented default (not sent).

    Raises InvalidParameterError (naming the parameter, the value and the range) for text that does not parse.
    """
    kind = widget_kind(p)
    value: Any
    if kind == "float_slider":
        value = round(float(wvalue), _decimals(p.step))  # sliders send 0.30000000000000004
    elif kind in ("int_slider", "checkbox", "dropdown"):
        value = wvalue
    elif kind == "tristate":
        value = None if wvalue == UNSET else wvalue == "true"
    else:
        text = str(wvalue).strip()
        if not text:
            return None
        if p.kind == "stop" and text[:1] not in '["':
            lines = [line for line in str(wvalue).splitlines() if line]
            value = lines[0] if len(lines) == 1 else lines
        else:
            return _not_default(p, p.parse(text))
    if value is None:
        return None
    return _not_default(p, p.check(value))


def _not_default(p: Param, value: Any) -> Any:
    return None if p.default is not None and value == p.default and type(value) is type(p.default) else value


# -- the schema box --------------------------------------------------------------------------------------------
SCHEMA_EXAMPLE = "label: yes|no|unsure, reason: str"


def schema_value(text: str) -> str | dict[str, Any] | None:
    """What the panel's "schema" box sends as ``schema=``: None when empty, a JSON Schema object for text starting
    with ``{``, else the spec string; checked now (InvalidParameterError naming the problem, as ``--schema`` is).
    """
    from ..core.schema import to_schema

    text = text.strip()
    if not text:
        return None
    value: str | dict[str, Any] = text
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidParameterError(
                f"schema: {text!r} is not valid JSON ({e.msg}); the box takes a spec such as '{SCHEMA_EXAMPLE}' "
                "or a JSON Schema object.",
                param="schema",
                value=text,
            ) from None
    to_schema(value)  # InvalidParameterError "schema: ..." naming the field and the problem
    return value


# -- the thinking switch ---------------------------------------------------------------------------------------
SWITCH_CHOICES = (("model default", UNSET), ("on", "on"), ("off", "off"))


def reasoning_value(switch: str, effort: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The ``reasoning`` object for the switch and effort pickers (None: neither set, nothing sent).

    ``extra`` keeps keys the panel has no picker for (max_tokens, exclude) when they came from ``%wcode set``.
    """
    out: dict[str, Any] = {k: v for k, v in (extra or {}).items() if k not in ("enabled", "effort")}
    if switch in ("on", "off"):
        out["enabled"] = switch == "on"
    if effort:
        out["effort"] = effort
    return PARAMS["reasoning"].check(out) if out else None


def reasoning_widgets(value: Mapping[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    """(switch, effort, extra keys) that show a ``reasoning`` session value."""
    if not value:
        return UNSET, UNSET, {}
    enabled = value.get("enabled")
    switch = UNSET if enabled is None else ("on" if enabled else "off")
    extra = {k: v for k, v in value.items() if k not in ("enabled", "effort")}
    return switch, value.get("effort") or UNSET, extra


# -- widgets ---------------------------------------------------------------------------------------------------
class Control:
    """One parameter's row: the input widget, a marker saying default or sent, and a reset button."""

    def __init__(self, p: Param) -> None:
        import ipywidgets as w

        self.param = p
        self.kind = widget_kind(p)
        common: dict[str, Any] = {
            "description": p.name,
            "tooltip": tooltip(p),
            "style": {"description_width": DESCRIPTION_WIDTH},
            # grows to its row, never below what a slider needs to stay usable (theme.py lets the row wrap)
            "layout": w.Layout(flex="1 1 auto", width="auto", min_width=CONTROL_MIN, max_width=CONTROL_MAX),
        }
        self.widget: ipywidgets.ValueWidget
        if self.kind == "float_slider":
            self.widget = w.FloatSlider(
                value=p.default,
                min=p.min,
                max=p.max,
                step=p.step or 0.01,
                readout_format=f".{_decimals(p.step)}f",
                continuous_update=False,
                **common,
            )
        elif self.kind == "int_slider":
            self.widget = w.IntSlider(
                value=p.default,
                min=int(p.min),  # type: ignore[arg-type]
                max=int(p.max),  # type: ignore[arg-type]
                step=int(p.step or 1),
                continuous_update=False,
                **common,
            )
        elif self.kind == "checkbox":
            # A checkbox shows no tooltip beside a description (ipywidgets 8): its name is a label of its own.
            common.update(description="", layout=w.Layout(width="auto"))
            self.widget = w.Checkbox(value=bool(p.default), indent=False, **common)
        elif self.kind == "tristate":
            self.widget = w.Dropdown(options=[("not set", UNSET), ("true", "true"), ("false", "false")], **common)
        elif self.kind == "dropdown":
            options = [(f"{c} (default)" if c == p.default else c, c) for c in p.choices]
            self.widget = w.Dropdown(options=options, value=p.default, **common)
        elif self.kind == "textarea":
            placeholder = "one string per line, or JSON" if p.kind == "stop" else "JSON, e.g. " + _example(p)
            self.widget = w.Textarea(placeholder=placeholder, rows=2, continuous_update=False, **common)
        else:
            self.widget = w.Text(placeholder=f"{default_text(p)} (default)", continuous_update=False, **common)
        self.widget.add_class(f"wm-param-{p.name}")
        self.marker = w.HTML(layout=w.Layout(flex="1 1 150px"))
        self.marker.add_class("wm-marker")
        self.reset = w.Button(
            icon="undo", tooltip=f"Back to the default ({default_text(p)}): not sent", layout=w.Layout(width="auto")
        )
        self.reset.add_class("wm-reset")
        self.reset.on_click(lambda _b: self.set(None))
        parts = [self.widget, self.reset, self.marker]
        if self.kind == "checkbox":
            name = w.HTML(_described(p.name, common["tooltip"]), layout=w.Layout(width=DESCRIPTION_WIDTH))
            name.add_class("wm-name")
            parts.insert(0, name)
        self.row = w.HBox(parts, layout=ROW)
        self.error: InvalidParameterError | None = None
        self.mark()

    def get(self) -> Any:
        """The value to send, or None (at default / empty); raises InvalidParameterError for bad text."""
        return from_widget(self.param, self.widget.value)

    def set(self, value: Any) -> None:
        """Show a session value (None: back to the default)."""
        self.widget.value = to_widget(self.param, value)

    def mark(self, error: InvalidParameterError | None = None) -> None:
        """Say whether the value is the default (not sent), sent, or not valid."""
        self.error = error
        if error is not None:
            self.marker.value = "<span class='wm-invalid'>not valid: not sent</span>"
            return
        try:
            value = self.get()
        except InvalidParameterError:
            value = None
        if value is None:
            self.marker.value = f"<span class='wm-muted'>default {default_text(self.param)}</span>"
        else:
            self.marker.value = f"<b>sent</b> <span class='wm-muted'>(default {default_text(self.param)})</span>"


def _described(name: str, help_text: str) -> str:
    return f'<span title="{html.escape(help_text, quote=True)}">{html.escape(name)}</span>'


def show_help(root: Any) -> None:
    """Make every described control in ``root``'s tree show its tooltip on hover.

    ipywidgets 8 puts the tooltip on a slider's label, but a text box, dropdown or text area with a description
    drops it (issue 16: help only on the sliders). Their description becomes an HTML span titled with the help,
    so hovering the name shows it, as on the sliders; the help text itself stays in one place, the tooltip.
    """
    import ipywidgets as w

    stack = [root]
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        tip, name = getattr(widget, "tooltip", None), getattr(widget, "description", "")
        if not (tip and name and hasattr(widget, "description_allow_html")) or widget.description_allow_html:
            continue
        if isinstance(widget, (w.Checkbox, w.FloatSlider, w.IntSlider, w.Button, w.ToggleButton)):
            continue  # a slider's label shows it already; a checkbox's name is its own label (Control); a button's
            # title is its tooltip, and its description is plain text (HTML would show as its label)
        widget.description = _described(name, tip)
        widget.description_allow_html = True


def _example(p: Param) -> str:
    return {"logit_bias": '{"1": -100}', "response_format": '{"type": "json_object"}'}.get(p.name, "[...]")


class ThinkingControl:
    """The thinking switch and effort: one ``reasoning`` value, usable only on models that can switch."""

    def __init__(self) -> None:
        import ipywidgets as w

        p = PARAMS["reasoning"]
        style = {"description_width": "70px"}
        self.switch = w.Dropdown(
            options=SWITCH_CHOICES,
            description="thinking",
            tooltip=tooltip(p),
            style=style,
            layout=w.Layout(width="240px", min_width="200px"),
        )
        self.effort = w.Dropdown(
            options=[("default", UNSET)] + [(e, e) for e in EFFORTS],
            description="effort",
            tooltip=tooltip(p),
            style=style,
            layout=w.Layout(width="200px", min_width="170px"),
        )
        self.switch.add_class("wm-thinking-switch")
        self.effort.add_class("wm-effort")
        self.note = w.HTML(layout=w.Layout(flex="1 1 200px"))
        self.row = w.HBox([self.switch, self.effort, self.note], layout=ROW)
        self.extra: dict[str, Any] = {}

    def get(self) -> dict[str, Any] | None:
        return reasoning_value(self.switch.value, self.effort.value, self.extra)

    def set(self, value: Mapping[str, Any] | None) -> None:
        self.switch.value, self.effort.value, self.extra = reasoning_widgets(value)

    def enable(self, thinking: str | None) -> None:
        """Usable only when the catalog says the model can switch; otherwise say why not."""
        can = thinking == "switchable"
        self.switch.disabled = self.effort.disabled = not can
        if can:
            self.note.value = ""
        elif thinking is None:
            self.note.value = "<span class='wm-muted'>unknown model: no thinking switch</span>"
        else:
            self.note.value = f"<span class='wm-muted'>this model's thinking is {thinking}: no switch</span>"


class ParamControls:
    """Every parameter's control, kept in step with a session's ``params`` in both directions.

    A user change validates the value and calls ``session.set_param`` (None unsets it); a session change
    (``%wcode set``) moves the control. A guard flag stops the echo of one from triggering the other.
    """

    def __init__(self, on_error: Callable[[InvalidParameterError | None], None] | None = None) -> None:
        self.controls = {name: Control(p) for name, p in PARAMS.items() if name not in COMPOSITE}
        self.thinking = ThinkingControl()
        self._on_error = on_error
        self._session: Any = None
        self._quiet = False
        for name, control in self.controls.items():
            control.widget.observe(lambda _change, n=name: self._changed(n), names="value")
        for widget in (self.thinking.switch, self.thinking.effort):
            widget.observe(lambda _change: self._changed("reasoning"), names="value")

    # -- values ------------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every parameter not at its default, as it would be sent (invalid text boxes are left out)."""
        out: dict[str, Any] = {}
        for name, control in self.controls.items():
            if control.error is None:
                value = control.get()
                if value is not None:
                    out[name] = value
        reasoning = self.thinking.get()
        if reasoning is not None:
            out["reasoning"] = reasoning
        return out

    def errors(self) -> list[InvalidParameterError]:
        """Text boxes whose content does not parse (the panel refuses to send while there are any)."""
        return [c.error for c in self.controls.values() if c.error is not None]

    def load(self, values: Mapping[str, Any]) -> None:
        """Show these session values; every parameter not in ``values`` goes back to its default."""
        with self._quietly():
            for name, control in self.controls.items():
                control.set(values.get(name))
                control.mark()
            self.thinking.set(values.get("reasoning"))

    def show(self, name: str, value: Any) -> None:
        """Move one control to a value that changed elsewhere, without echoing it back."""
        with self._quietly():
            if name == "reasoning":
                self.thinking.set(value)
            elif name in self.controls:
                self.controls[name].set(value)
                self.controls[name].mark()

    # -- session binding ----------------------------------------------------------------------------------
    def bind(self, session: Any) -> Callable[[], None]:
        """Load ``session.params``, write user changes to it, follow its changes; returns an unbind function."""
        self.load(session.params)
        self._session = session

        def listener(name: str, value: Any) -> None:
            if name in PARAMS and not self._quiet:
                self.show(name, value)

        unsubscribe = session.subscribe(listener)

        def unbind() -> None:
            unsubscribe()
            self._session = None

        return unbind

    def _changed(self, name: str) -> None:
        if self._quiet:
            return
        if name == "reasoning":
            value, error = self.thinking.get(), None
        else:
            control = self.controls[name]
            try:
                value, error = control.get(), None
            except InvalidParameterError as e:
                value, error = None, e
            control.mark(error)
        if self._on_error is not None:
            self._on_error(error)
        if error is not None or self._session is None:
            return
        with self._quietly():
            self._session.set_param(name, value)
            # One rule, kept from both sides: top_logprobs set means logprobs on (the API refuses the one without
            # the other), so no Send is refused for a combination the controls let the user make.
            if name == "top_logprobs" and value and not self.controls["logprobs"].get():
                self._also("logprobs", True)  # alternatives asked for: tick logprobs
            elif name == "logprobs" and not value and self.controls["top_logprobs"].get():
                self._also("top_logprobs", None)  # logprobs unticked: alternatives back to none

    def _also(self, name: str, value: Any) -> None:
        """Move a second control (and the session) along with the one the user changed."""
        assert self._session is not None
        self.controls[name].set(value)
        self.controls[name].mark()
        self._session.set_param(name, value)

    def _quietly(self) -> _Quiet:
        return _Quiet(self)


class _Quiet:
    """Context manager: while inside, widget changes are not written back to the session."""

    def __init__(self, owner: ParamControls) -> None:
        self.owner = owner
        self.before = owner._quiet

    def __enter__(self) -> None:
        self.owner._quiet = True

    def __exit__(self, *exc: object) -> None:
        self.owner._quiet = self.before
