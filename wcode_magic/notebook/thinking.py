"""The thinking section of every live view (the panel's turns, a ``%%chat`` cell's live box, the compare columns).

One Accordion whose open/closed state becomes the reader's the moment they toggle it: the views open it while the
thinking streams and close it when the answer starts, but only until then (issue 16: a block the reader collapsed
re-opened within half a second). Written once, with the text as wrapped preformatted HTML and the "Thought for
N s" title, so the three views behave and read alike. Also the Markdown outputs they show answers in.
"""

from __future__ import annotations

import html
from typing import Any

# Inline styles only for what the layout needs; colours come from the theme CSS (classes ``wm-*``). Text wraps at
# spaces; only a word longer than the line (a URL) breaks, and ``anywhere`` (unlike ``break-word``) also keeps
# such a word from widening the view past a narrow cell.
WRAP = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:0"


def pre(text: str) -> str:
    """The thinking as preformatted text that wraps at word boundaries.

    The newline after <pre> is eaten by the HTML parser, so a leading newline of the text survives.
    """
    return f"<pre class='wm-thinking-text' style='{WRAP}'>\n{html.escape(text)}</pre>"


def thought_title(seconds: float | None) -> str:
    """The thinking's header: "Thinking…" while it streams, "Thought for N s" once the answer starts."""
    if seconds is None:
        return "Thinking…"
    if seconds < 0.1:
        return "Thought for less than 0.1 s"
    return f"Thought for {seconds:.0f} s" if seconds >= 10 else f"Thought for {seconds:.1f} s"


def markdown(text: str) -> tuple[dict[str, Any], ...]:
    """An Output widget's outputs showing ``text`` as Markdown (JupyterLab renders it, code blocks included)."""
    return ({"output_type": "display_data", "data": {"text/markdown": text, "text/plain": text}, "metadata": {}},)


class ThinkingSection:
    """``accordion`` (one section, ``text`` in it) opened and closed by the view until the reader toggles it."""

    def __init__(self, title: str = "Thinking…", *, is_open: bool = False, hidden: bool = False) -> None:
        import ipywidgets as w

        self.text = w.HTML()
        self.accordion = w.Accordion(children=[self.text], titles=(title,), selected_index=0 if is_open else None)
        if hidden:
            self.accordion.layout.display = "none"
        self.reader_chose = False  # the reader opened or closed it: from now on only they do
        self._ours = False
        self.accordion.observe(self._toggled, names="selected_index")

    def _toggled(self, _change: Any) -> None:
        if not self._ours:
            self.reader_chose = True

    def set_open(self, is_open: bool) -> None:
        """Open or close it, unless the reader has chosen."""
        index = 0 if is_open else None
        if self.reader_chose or self.accordion.selected_index == index:
            return
        self._ours = True
        try:
            self.accordion.selected_index = index
        finally:
            self._ours = False

    @property
    def choice(self) -> bool | None:
        """Whether the reader left it open (True) or closed (False); None if they never touched it."""
        return (self.accordion.selected_index == 0) if self.reader_chose else None

    def show(self, reasoning: str) -> None:
        self.text.value = pre(reasoning)
