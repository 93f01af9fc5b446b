"""An HTML heat map of the answer's tokens: ``Response.show_tokens(color_by=..., top=...)``.

Each token is a span coloured by its probability, the entropy of its alternatives, or its rank; hovering shows
the top alternatives with their probabilities (a plain ``title`` tooltip: no JavaScript, so it works in every
front-end). Spaces, tabs and newlines are drawn (``·``, ``→``, ``↵``) because where a token starts matters.
A space glyph is followed by ``<wbr>``: the view has no real spaces, so without it a line could only break
mid-word. Colours follow the theme: a light and a dark scale (``colours``), text colours from JupyterLab's CSS
variables with fallbacks, so a saved notebook opened without JupyterLab still reads. Jupyter drops outputs over
~1 MB, so colours are CSS classes (not inline styles) and the view keeps to a byte
budget: the whole answer first, then as many hover texts as fit (least likely tokens first), with a note saying
what was left out.
"""

from __future__ import annotations

import html
import itertools
import math
from typing import Any

from ..core.errors import InvalidParameterError
from ..core.response import Response
from .colours import DARK, HEAT_DARK, HEAT_LIGHT, HEAT_TEXT

COLOR_BY = ("prob", "entropy", "rank")
MAX_TOP = 20
BUDGET_BYTES = 900_000  # stay clear of Jupyter's 1 MB output limit, leaving room for the style and the note
_SPAN_BYTES = len("<span class=b></span>")  # a token's span without its class digit and text
_TITLE_BYTES = len(' title=""')
# ten steps from "the model hesitated" (red) to "the model was sure" (green, pale in light, dark in dark): colours.py
LEGEND = {
    "prob": "colour: probability of the sampled token (red = unlikely, through brown to green = likely)",
    "entropy": "colour: entropy of the returned alternatives, a lower bound (red = spread out, green = peaked)",
    "rank": "colour: rank of the sampled token among the alternatives (green = 1st, red = 6th or not listed)",
}
_VISIBLE = str.maketrans({" ": "·", "\t": "→", "\r": "␍", "\n": "↵\n"})
_MAX_ENTROPY = math.log(MAX_TOP)


class TokenView:
    """The rendered view: Jupyter shows ``_repr_html_``; ``.html`` is the markup; ``repr`` a one-line summary."""

    def __init__(self, markup: str, shown: int, total: int, color_by: str, hovers: int = 0) -> None:
        self.html = markup
        self.shown = shown  # tokens in the view
        self.total = total  # tokens in the answer
        self.hovers = hovers  # tokens with their alternatives on hover
        self.color_by = color_by

    @property
    def truncated(self) -> bool:
        return self.shown < self.total

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        more = f" (truncated from {self.total})" if self.truncated else ""
        hover = "" if self.hovers == self.shown else f", alternatives on hover for {self.hovers}"
        return f"<TokenView {self.shown} tokens{more}{hover}, colour by {self.color_by}>"


def _check(color_by: str, top: int) -> None:
    if color_by not in COLOR_BY:
        raise InvalidParameterError(
            f"color_by={color_by!r} is not allowed: use one of {', '.join(map(repr, COLOR_BY))}.",
            param="color_by",
            value=color_by,
        )
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP:
        raise InvalidParameterError(
            f"top={top!r} is not allowed: give an integer from 0 to {MAX_TOP} (alternatives shown on hover).",
            param="top",
            value=top,
        )


def bucket(color_by: str, prob: float, entropy: float, rank: float) -> int:
    """0 (red: worth a look) .. 9 (green: unremarkable) for one token."""
    if color_by == "prob":
        return min(9, int(prob * 10))
    if color_by == "entropy":
        if math.isnan(entropy):
            return 9
        return 9 - min(9, int(entropy / _MAX_ENTROPY * 10))
    if math.isnan(rank) or rank > 5:
        return 0
    return {1: 9, 2: 5, 3: 3, 4: 2, 5: 1}[int(rank)]


def visible(text: str) -> str:
    """Whitespace drawn as glyphs (a newline keeps its line break after the ``↵``)."""
    return text.translate(_VISIBLE)


def _alt_label(alt: dict[str, Any]) -> str:
    """An alternative as a reader can see it: byte fragments as hex, whitespace drawn."""
    token = alt.get("token") or ""
    raw = alt.get("bytes")
    if raw is not None and ("\ufffd" in token or "\\x" in token):
        return "<" + " ".join(f"{b:02x}" for b in raw) + ">"
    return visible(token).replace("\n", "")


def _title(
    pos: int, prob: float, rank: float, entropy: float, sampled: str | None, alts: list[dict[str, Any]], top: int
) -> str:
    rank_s = "not listed" if math.isnan(rank) else f"{int(rank)}"
    lines = [f"#{pos}  p={prob:.3g}  rank {rank_s}  entropy≥{entropy:.2f}"]
    alts = sorted(alts, key=lambda a: -a["logprob"])[:top]
    for alt in alts:
        mark = "▸" if alt.get("token") == sampled else "  "
        lines.append(f"{mark}{_alt_label(alt)}  {math.exp(alt['logprob']):.1%}")
    return "\n".join(lines)


def _style() -> str:
    """The view's stylesheet: both colour scales (the dark one under JupyterLab's dark themes), words kept whole."""
    light = "".join(f".wm-tk .b{i}{{background:{c}}}" for i, c in enumerate(HEAT_LIGHT))
    dark = "".join(f"{DARK} .wm-tk .b{i}{{background:{c}}}" for i, c in enumerate(HEAT_DARK))
    return (
        "<style>.wm-tk{font-family:var(--jp-code-font-family,monospace);white-space:pre-wrap;word-break:normal;"
        "overflow-wrap:break-word;line-height:1.7}"
        f".wm-tk span{{border-right:1px solid rgba(128,128,128,.3);color:{HEAT_TEXT['light']}}}"
        f"{DARK} .wm-tk span{{color:{HEAT_TEXT['dark']}}}"
        ".wm-tk .wm-note{color:var(--jp-ui-font-color1,#333);font-size:85%}"
        f"{light}{dark}</style>"
    )


def _body(text: str) -> str:
    """A token as shown: whitespace drawn, escaped, and a line break allowed after each drawn space or tab."""
    return html.escape(visible(text)).replace("·", "·<wbr>").replace("→", "→<wbr>")


def show_tokens(response: Response, color_by: str = "prob", top: int = 5) -> TokenView:
    """The answer as coloured tokens with their top alternatives on hover (see the module docstring).

    Within the byte budget the whole answer comes first (every token coloured), then the hover texts, which cost
    several times a token's span: all of them when they fit, else the least likely tokens' first (where a reader
    looks), with a note saying how many have one.
    """
    from .frames import tokens

    _check(color_by, top)
    df = tokens(response, segment="answer")
    head = f'<div class="wm-tk">{_style()}<div class="wm-note">{html.escape(LEGEND[color_by])}</div>'
    if df.empty:
        note = html.escape(f"No token view: {df.attrs.get('reason', 'no logprobs')}.")
        return TokenView(f'{head}<div class="wm-note">{note}</div></div>', 0, 0, color_by)
    texts = df["text"].tolist()
    probs = df["prob"].tolist()
    ranks = df["rank"].tolist()
    entropies = df["entropy"].tolist()
    total = len(texts)

    size = len(head.encode())
    bodies: list[str] = []
    classes: list[int] = []
    for pos in range(total):
        body = _body(texts[pos])
        cls = bucket(color_by, probs[pos], entropies[pos], ranks[pos])
        size += len(body.encode()) + _SPAN_BYTES + len(str(cls))
        if size > BUDGET_BYTES:
            break
        bodies.append(body)
        classes.append(cls)
    shown = len(bodies)

    cols = response.logprob_columns("content")  # the answer's columns: the frame's rows, position by position
    assert cols is not None  # the frame has rows
    starts = list(itertools.accumulate(cols.counts[:shown], initial=0))
    titles: dict[int, str] = {}
    for pos in sorted(range(shown), key=probs.__getitem__):  # least likely first
        alts = cols.alternatives(pos, starts[pos])
        title = html.escape(_title(pos, probs[pos], ranks[pos], entropies[pos], cols.tokens[pos], alts, top))
        size += len(title.encode()) + _TITLE_BYTES
        if size > BUDGET_BYTES:
            break
        titles[pos] = title

    parts = [head]
    for pos, (body, cls) in enumerate(zip(bodies, classes, strict=True)):
        hover = titles.get(pos)
        attr = f' title="{hover}"' if hover is not None else ""
        parts.append(f"<span class=b{cls}{attr}>{body}</span>")
    notes = []
    if shown < total:
        notes.append(
            f"Showing the first {shown} of {total} tokens: the full view would pass Jupyter's 1 MB output limit."
        )
    if len(titles) < shown:
        notes.append(
            f"Alternatives on hover for the {len(titles)} least likely of the {shown} tokens shown; more would pass "
            "Jupyter's 1 MB output limit."
        )
    if notes:
        notes.append("<code>r.tokens()</code> and <code>r.alternatives()</code> have them all.")
        parts.append(f'<div class="wm-note">{" ".join(notes)}</div>')
    parts.append("</div>")
    return TokenView("".join(parts), shown, total, color_by, hovers=len(titles))
