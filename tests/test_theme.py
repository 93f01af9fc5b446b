"""Theme, fit and help, the parts that need no browser: contrast arithmetic, the heat map's scales, the stylesheet's
colours, help on every control, the logprob rule, and the %%chat thinking that keeps the reader's choice.
tests/test_browser_theme.py measures the same promises on the rendered page in JupyterLab Light and Dark."""

from __future__ import annotations

import html
import itertools
import re

import pytest
from colour_checks import AA_CONTRAST, contrast_ratio, lightness, rgb

from wcode_magic.analysis import render
from wcode_magic.analysis.colours import HEAT_DARK, HEAT_LIGHT, HEAT_TEXT
from wcode_magic.core.params import PARAMS
from wcode_magic.core.response import Response
from wcode_magic.core.settings import SETTINGS
from wcode_magic.notebook import controls, live, livebox, theme


def test_contrast_ratio_matches_wcag():
    assert contrast_ratio("#000", "#fff") == pytest.approx(21)
    assert contrast_ratio("#fff", "#fff") == pytest.approx(1)
    assert contrast_ratio("#808080", "#ffffff") == pytest.approx(3.95, abs=0.01)  # the old grey helper text
    assert contrast_ratio("#767676", "#fff") == pytest.approx(4.54, abs=0.01)  # the lightest AA grey on white
    assert contrast_ratio("#fff", "#767676") == contrast_ratio("#767676", "#fff")
    with pytest.raises(ValueError, match="#rrggbb"):
        rgb("red")


@pytest.mark.parametrize(("scale", "text"), [(HEAT_LIGHT, HEAT_TEXT["light"]), (HEAT_DARK, HEAT_TEXT["dark"])])
def test_heat_scales_are_evenly_spaced_in_lightness_and_readable(scale, text):
    steps = [lightness(b) - lightness(a) for a, b in itertools.pairwise(scale)]
    mean = sum(steps) / len(steps)
    assert abs(mean) >= 2.5, "adjacent steps must be told apart"
    assert all(abs(s - mean) <= 0.4 for s in steps), f"uneven steps in L*: {steps}"
    for background in scale:
        assert contrast_ratio(text, background) >= AA_CONTRAST, background
    assert len(set(scale)) == 10


def test_the_dark_scale_ends_near_the_dark_background_not_white():
    # the old scale's upper half was near-white: a glaring strip in JupyterLab Dark (#111 / #212121)
    assert lightness(HEAT_DARK[9]) < 25 and lightness(HEAT_LIGHT[9]) > 95
    assert max(lightness(c) for c in HEAT_DARK) < 50


def test_heat_map_css_has_both_scales_and_keeps_words_whole():
    css = render._style()
    for i, (light, dark) in enumerate(zip(HEAT_LIGHT, HEAT_DARK, strict=True)):
        assert f".wm-tk .b{i}{{background:{light}}}" in css
        assert f'body[data-jp-theme-light="false"] .wm-tk .b{i}{{background:{dark}}}' in css
    assert "word-break:normal" in css and "anywhere" not in css and "break-all" not in css
    assert render._body(" over the\thill") == "·<wbr>over·<wbr>the→<wbr>hill"


def _hard_coded(css: str) -> list[str]:
    """Colours not given as a JupyterLab variable's fallback (``var(--jp-..., #abc)``)."""
    fallbacks = set(re.findall(r"var\(--jp-[\w-]+,\s*(#[0-9a-fA-F]{3,6})\)", css))
    return [c for c in re.findall(r"#[0-9a-fA-F]{3,6}\b", css) if c not in fallbacks]


def test_panel_stylesheet_takes_every_colour_from_jupyterlab_with_readable_fallbacks():
    assert _hard_coded(theme.STYLE) == []
    assert "color:gray" not in theme.STYLE and "#b00020;" not in theme.STYLE
    # the first definition of each (the light one; the dark themes' overrides come after)
    fallbacks = dict(reversed(re.findall(r"(--wm-[\w-]+):var\(--jp-[\w-]+,(#[0-9a-f]{3,6})\)", theme.STYLE)))
    for name in ("--wm-fg", "--wm-muted", "--wm-error-fg"):  # text colours, outside JupyterLab: on white
        assert contrast_ratio(fallbacks[name], "#ffffff") >= AA_CONTRAST, name
    dark_error = re.search(r"--wm-error-fg:var\(--jp-error-color2,(#[0-9a-f]+)\)", theme.STYLE)
    assert dark_error and contrast_ratio(dark_error.group(1), "#212121") >= AA_CONTRAST


def test_panel_colours_are_classes_not_inline(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        assert theme.STYLE in [getattr(c, "value", None) for c in p.widget.children]
        p.notices = ["a warning"]
        shown = p._error_html("an error")
        assert "wm-warning" in shown and "wm-error-text" in shown and "style=" not in shown
        assert "class='wm-muted'" in p.model_info.value and "style=" not in p.model_info.value
        for control in p.controls.controls.values():
            assert "style=" not in control.marker.value
    finally:
        p.close()


def test_every_control_has_help_from_its_declaration(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        for name, control in p.controls.controls.items():
            assert PARAMS[name].help in control.widget.tooltip, name
            assert control.reset.tooltip, name
            # shown on hover: ipywidgets 8 titles a slider's label itself; other kinds carry it in their name
            shown = "".join(str(getattr(c, "value", "")) for c in control.row.children) + control.widget.description
            if control.kind not in ("float_slider", "int_slider"):
                assert f'title="{html.escape(control.widget.tooltip, quote=True)}"' in shown, name
        for widget in (p.controls.thinking.switch, p.controls.thinking.effort):
            assert PARAMS["reasoning"].help in widget.tooltip
        for widget, setting in ((p.model_pick, "model"), (p.model_text, "model"), (p.base_url, "base_url")):
            assert widget.tooltip == SETTINGS[setting].help
        assert p.system.tooltip == SETTINGS["system"].help
        assert p.extra_body.tooltip and p.schema.tooltip
        for widget in (p.model_pick, p.base_url, p.system, p.extra_body, p.schema, p.controls.thinking.switch):
            assert widget.description_allow_html and "title=" in widget.description
    finally:
        p.close()


def test_controls_fit_narrow_rows_instead_of_squeezing(session):
    from wcode_magic.notebook.panel import Panel

    p = Panel()
    try:
        for control in p.controls.controls.values():
            assert control.row.layout.flex_flow == "row wrap"
            if control.kind != "checkbox":  # a checkbox is as wide as its box
                assert control.widget.layout.min_width == controls.CONTROL_MIN  # a slider's track stays >= 100 px
        assert p.controls.thinking.row.layout.flex_flow == "row wrap"
    finally:
        p.close()


def test_unticking_logprobs_clears_top_logprobs_so_send_is_not_refused(session, local_url):
    import asyncio

    from wcode_magic.notebook.panel import Panel

    session.update(base_url=local_url, model="local/ngram")
    p = Panel()
    try:
        made = p.controls.controls
        made["top_logprobs"].widget.value = 5  # alternatives asked for: logprobs ticks itself
        assert session.params["logprobs"] is True and session.params["top_logprobs"] == 5
        made["logprobs"].widget.value = False  # and unticking logprobs takes the alternatives with it
        assert made["top_logprobs"].widget.value == 0
        assert "logprobs" not in session.params and "top_logprobs" not in session.params
        made["max_tokens"].widget.value = "5"

        async def go() -> None:
            assert p.send("hello") is not None, p.error.value
            await asyncio.wait_for(p.wait(), 30)

        asyncio.run(go())
        assert p.state == "done", p.error.value
    finally:
        p.close()


def test_live_thinking_keeps_the_readers_choice():
    box = livebox.LiveBox()
    try:
        box.show("", "step one", "m · thinking…", answering=False)
        assert box.thinking.selected_index == 0, "open while it streams"
        box.thinking.selected_index = None  # the reader collapses it (a front-end change)
        for more in ("step one two", "step one two three"):
            box.show("", more, "m · thinking…", answering=False)
        box.show("", "step one two three", "The answer", answering=True)
        assert box.thinking.selected_index is None and box.choice is False

        other = livebox.LiveBox()
        other.show("", "step", "m · thinking…", answering=False)
        other.show("", "step", "An answer", answering=True)
        assert other.thinking.selected_index is None and other.choice is None, "closed for the answer, untouched"
        other.thinking.selected_index = 0  # the reader opens it while the answer streams
        other.show("", "step", "An answer that grows", answering=True)
        assert other.thinking.selected_index == 0 and other.choice is True
        other.close()
    finally:
        box.close()


def test_static_view_keeps_the_choice():
    md = "<details><summary>Thinking (2 words)</summary>\n\n> a b\n\n</details>\nanswer"
    assert livebox.keep_choice(md, None) == md
    assert livebox.keep_choice(md, False) == md
    opened = livebox.keep_choice(md, True)
    assert opened.startswith("<details open><summary>Thinking (2 words)") and livebox.keep_choice(opened, False) == md


class _Recorded(live.NotebookView):
    """The notebook view with its output recorded instead of displayed (no kernel here)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[dict] = []

    def _show(self, bundle: dict, metadata: dict | None = None) -> None:
        self.shown.append(bundle)


def _feed(r: Response, **delta: str) -> None:
    r.feed({"choices": [{"index": 0, "delta": delta}]})


def test_chat_view_streams_thinking_in_widgets_and_ends_static_with_the_readers_choice():
    view = _Recorded()
    r = Response({"model": "m"})
    _feed(r, reasoning="First I think")
    view.update(r)
    assert view.live is not None and "application/vnd.jupyter.widget-view+json" in view.shown[-1]
    for word in (" more", " and more"):
        _feed(r, reasoning=word)
        view._now = True  # past the throttle
        view.update(r)
    assert len(view.shown) == 1, "the output is not re-sent while the thinking grows: only the widgets change"
    _feed(r, content="The answer")
    view._now = True
    view.update(r)
    assert len(view.shown) == 2 and view.live.thinking.selected_index is None, "closed as the answer starts"
    view.live.thinking.selected_index = 0  # the reader opens it again
    r.finish(complete=True)
    live_box = view.live
    view.finish(r)
    final = view.shown[-1]
    assert "widget-view" not in str(final) and "<details open><summary>Thinking" in final["text/markdown"]
    assert view.live is None and live_box.box.comm is None, "the widgets are closed once the output is static"
