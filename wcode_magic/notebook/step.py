"""``wm.step(prompt, model=..., **settings)``: a widget that generates one token at a time (analysis/stepping.py).

It shows the text so far, each token coloured by the model's probability for it (a token taken by hand is
framed), and the next token's candidates as bars: the model's probability (grey) and the probability after the
temperature / top_k / top_p / min_p sliders (coloured; a candidate the filters cut is greyed out). A click on a
candidate's button takes it; "Sample" draws one with the sliders' settings; "Back" undoes; "Run to end" lets the
server finish. Moving a slider redraws the bars without asking the server again.
"""

from __future__ import annotations

import html
from typing import Any

from ..analysis.branches import span
from ..analysis.stepping import TOP, Stepper
from ..core.errors import WcodeError

_BAR_PX = 260


def _bar(before: float, after: float) -> str:
    cut = after == 0.0
    colour = "#bbb" if cut else "#3b7dd8"
    return (
        f"<div style='width:{_BAR_PX}px;height:7px;background:#eee;margin:2px 0'>"
        f"<div style='width:{before * _BAR_PX:.1f}px;height:7px;background:#999'></div></div>"
        f"<div style='width:{_BAR_PX}px;height:7px;background:#eee'>"
        f"<div style='width:{after * _BAR_PX:.1f}px;height:7px;background:{colour}'></div></div>"
    )


class StepWidget:
    """The widget and its Stepper (``.stepper``); displays itself in a notebook (``.box`` is the ipywidget)."""

    def __init__(self, stepper: Stepper) -> None:
        import ipywidgets as w

        self.stepper = stepper
        self.text = w.HTML()
        self.status = w.HTML()
        s = stepper.settings
        self.sliders = {
            "temperature": w.FloatSlider(
                value=s["temperature"], min=0.0, max=2.0, step=0.05, description="temperature"
            ),
            "top_k": w.IntSlider(value=int(s["top_k"]), min=0, max=TOP, description="top_k"),
            "top_p": w.FloatSlider(value=s["top_p"], min=0.0, max=1.0, step=0.01, description="top_p"),
            "min_p": w.FloatSlider(value=s["min_p"], min=0.0, max=1.0, step=0.01, description="min_p"),
        }
        for slider in self.sliders.values():
            slider.observe(self._on_setting, names="value")
        self.sample_button = w.Button(description="Sample", button_style="primary")
        self.back_button = w.Button(description="Back")
        self.run_button = w.Button(description="Run to end")
        self.sample_button.on_click(lambda _: self._do(self.stepper.sample))
        self.back_button.on_click(lambda _: self._do(self.stepper.back))
        self.run_button.on_click(lambda _: self._do(self.stepper.run_to_end))
        self.rows = w.VBox()
        self.candidate_buttons: list[Any] = []
        legend = w.HTML(
            "<span style='color:#666;font-size:85%'>bars: grey = the model's probability, blue = after the "
            "sliders (over the listed candidates); greyed = cut by the filters. Click a token to take it.</span>"
        )
        self.box = w.VBox(
            [
                self.text,
                w.HBox([self.sample_button, self.back_button, self.run_button]),
                w.HBox([w.VBox(list(self.sliders.values())[:2]), w.VBox(list(self.sliders.values())[2:])]),
                legend,
                self.rows,
                self.status,
            ]
        )
        self.refresh()

    def _on_setting(self, change: Any) -> None:
        self.stepper.settings[change["owner"].description] = change["new"]
        self.refresh(ask=False)

    def _do(self, move: Any, *args: Any) -> None:
        try:
            move(*args)
        except WcodeError as e:
            self.status.value = f"<span style='color:#b00'>{html.escape(e.message)}</span>"
            return
        self.refresh()

    def take(self, index: int) -> None:
        """What a click on candidate ``index`` does."""
        self._do(self.stepper.take, index)

    def refresh(self, ask: bool = True) -> None:
        """Redraw the text and the bars (``ask``: fetch the next candidates if not known yet)."""
        import ipywidgets as w

        st = self.stepper
        spans = "".join(span(t.text, t.prob, mark="forced" if t.how == "click" else "") for t in st.taken)
        prompt = html.escape(str(st.messages[-1].get("content", "")))
        self.text.value = (
            "<div class='wm-br' style='font-family:monospace;white-space:pre-wrap;line-height:1.7'>"
            f"<span style='color:#666'>{prompt}</span>{spans}</div>"
        )
        try:
            cands = st.candidates() if ask or st.prefix_bytes in st._candidates else []
            after = st.shaped() if cands else []
        except WcodeError as e:
            self.status.value = f"<span style='color:#b00'>{html.escape(e.message)}</span>"
            return
        rows, buttons = [], []
        for i, (c, a) in enumerate(zip(cands, after, strict=True)):
            button = w.Button(description=repr(c.text)[1:-1] or "∅", layout=w.Layout(width="150px"))
            button.style.button_color = "#eee" if a == 0 else None
            button.on_click(lambda _, i=i: self.take(i))
            buttons.append(button)
            label = w.HTML(f"{_bar(c.prob, a)}<span style='font-size:85%'>{c.prob:.1%} → {a:.1%}</span>")
            rows.append(w.HBox([button, label]))
        self.candidate_buttons = buttons
        self.rows.children = rows
        end = f" · ended ({st.finished})" if st.finished else ""
        self.status.value = f"<span style='color:#666'>{len(st.taken)} tokens · {html.escape(st.model)}{end}</span>"

    def __repr__(self) -> str:
        st = self.stepper
        return f"<step widget: {st.model}, {len(st.taken)} tokens so far: {st.text[-60:]!r}>"

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        data = self.box._repr_mimebundle_(**kw)
        if isinstance(data, dict):  # a one-line text/plain (the VBox's repr lists every control)
            data = {**data, "text/plain": repr(self)}
        return data


def step(prompt: str | list[dict[str, Any]], model: str | None = None, **params: Any) -> StepWidget:
    """A widget that generates one token at a time (see the module docstring). ``params``: the sliders' start
    values (temperature, top_k, top_p, min_p), ``seed`` for Sample, ``max_tokens`` for Run to end, ``base_url``,
    ``dialect``, ``headers``."""
    return StepWidget(Stepper(prompt, model=model, **params))
