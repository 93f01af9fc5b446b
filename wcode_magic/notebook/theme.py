"""The panel's and the live ``%%chat`` view's stylesheet: colours from JupyterLab's theme, controls that fit.

Why one stylesheet of classes instead of inline colours: inline ``#b00020`` or ``gray`` read well on white and
fail in JupyterLab Dark (2.2-3.0:1 measured), and grey on white was 3.95:1. Every colour here is a JupyterLab CSS
variable, chosen per theme where the same variable cannot pass WCAG AA (4.5:1) in both (``--jp-error-color0``
is dark red: right on white, too dark on #111), with a fallback for front-ends without JupyterLab's variables.
Warnings and errors keep the body text colour and carry their hue in a side bar and a tint, so their text is as
readable as any other. The fit rules let rows wrap instead of squeezing a slider to a dot or a button to "S…".

Included once per panel as an HTML child (``style_widget``); a ``<style>`` in the page applies to every
``.wm-panel`` and ``.wm-chat`` on it, so several panels do not conflict.
"""

from __future__ import annotations

from typing import Any

from ..analysis.colours import DARK

SCOPES = (".wm-panel", ".wm-chat", ".wm-compare")

_VARIABLES = (
    "{--wm-fg:var(--jp-ui-font-color1,#1f1f1f);--wm-muted:var(--jp-ui-font-color2,#595959);"
    "--wm-error-fg:var(--jp-error-color0,#b00020);--wm-error-bar:var(--jp-error-color1,#d32f2f);"
    "--wm-error-bg:var(--jp-rendermime-error-background,#fdd);--wm-warn-bar:var(--jp-warn-color1,#f57c00)}"
)
# In the dark themes the light end of each hue is the readable one.
_DARK_VARIABLES = "{--wm-error-fg:var(--jp-error-color2,#ef9a9a)}"

_RULES = (
    # colours, by meaning
    ".wm-muted{color:var(--wm-muted)}"
    ".wm-invalid{color:var(--wm-error-fg)}"
    ".wm-error-text,.wm-warning{color:var(--wm-fg);white-space:pre-wrap;overflow-wrap:break-word;"
    "padding:2px 8px;margin:2px 0;border-left:4px solid var(--wm-error-bar)}"
    ".wm-error-text{background:var(--wm-error-bg)}"
    ".wm-warning{border-left-color:var(--wm-warn-bar)}"
    # words wrap whole: at spaces, and mid-word only for a word longer than the line
    ".wm-thinking-text,.wm-answer,.widget-html-content{word-break:normal;overflow-wrap:break-word}"
    ".wm-thinking-text{white-space:pre-wrap}"
    # fit: rows wrap rather than squeeze; buttons keep their label; boxes never pass their row
    ".widget-hbox{flex-wrap:wrap;row-gap:4px;max-width:100%}"
    ".jupyter-button{flex:0 0 auto;min-width:max-content;overflow:visible}"
    ".jupyter-button.wm-reset{min-width:32px;padding:0 8px}"
    ".widget-text,.widget-textarea,.widget-dropdown,.widget-hslider,.widget-checkbox"
    "{max-width:calc(100% - 2 * var(--jp-widgets-margin,2px))}"
    # a slider in a narrow notebook puts its track and readout under its name rather than shrinking the track
    ".widget-hslider{flex-wrap:wrap;row-gap:2px;height:auto;min-height:var(--jp-widgets-inline-height,28px)}"
    # (room on the right for the handle, which overhangs the track's end by half its width at the maximum)
    ".widget-hslider .slider-container{flex:1 1 160px;min-width:160px;margin-right:10px}"
    ".wm-marker{min-width:0}"
    ".wm-name{text-align:right;padding-right:8px;box-sizing:border-box}"
    ".wm-marker .widget-html-content{line-height:1.3}"
    ".lm-TabBar-tab{flex:0 0 auto;min-width:max-content}"
    # ipywidgets draws inactive tab titles in --jp-ui-font-color2 on --jp-layout-color2: 4.4:1 in Light
    ".lm-TabBar .lm-TabBar-tab .lm-TabBar-tabLabel{color:var(--wm-fg)}"
    ".lm-TabBar-content{flex-wrap:wrap}"
    # and an accordion's header ("Thought for 3 s") in --jp-ui-font-color2 on --jp-layout-color2: 4.4:1 too
    ".jupyter-widget-Collapse-header,.jupyter-widget-Collapse-header span{color:var(--wm-fg)}"
)


def _scoped(rules: str, prefix: str = "") -> str:
    """Each rule of ``rules`` under every scope (``.wm-panel .wm-muted``, ``.wm-chat .wm-muted``...)."""
    out = []
    for rule in rules.split("}"):
        if not rule.strip():
            continue
        selectors, body = rule.split("{", 1)
        scoped = ",".join(f"{prefix}{scope} {sel.strip()}" for scope in SCOPES for sel in selectors.split(","))
        out.append(f"{scoped}{{{body}}}")
    return "".join(out)


STYLE = (
    "<style>"
    + ",".join(SCOPES)
    + _VARIABLES
    + ",".join(f"{DARK} {s}" for s in SCOPES)
    + _DARK_VARIABLES
    + _scoped(_RULES)
    + "</style>"
)


def style_widget() -> Any:
    """The stylesheet as an invisible widget, to put in a widget tree (the panel's, the live view's)."""
    import ipywidgets as w

    box = w.HTML(STYLE, layout=w.Layout(display="none"))
    box.add_class("wm-style")
    return box
