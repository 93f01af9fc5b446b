"""The streaming part of a ``%%chat`` output that thinks: widgets, so the reader's open/closed choice survives.

Why widgets (issue 16): the Markdown view was re-sent whole on every update, and a re-rendered ``<details>``
forgets that the reader collapsed it, so the thinking sprang open again within half a second. Here the thinking
is an Accordion whose open section is widget state: updates change only its text, and a click (synced back while
the ``%%chat`` cell awaits) is remembered. The kernel opens it while the thinking streams and closes it when the
answer starts, unless the reader has chosen; the final static Markdown (what the saved notebook keeps) opens or
closes the thinking as the reader left it (``choice``).
"""

from __future__ import annotations

import html
from typing import Any

from . import theme


def thinking_html(reasoning: str) -> str:
    """The thinking as wrapped preformatted text (the newline after ``<pre>`` is eaten, so the text's own stays)."""
    return f"<pre class='wm-thinking-text' style='margin:0'>\n{html.escape(reasoning)}</pre>"


def thinking_title(reasoning: str, answering: bool) -> str:
    """The section header: "Thinking…" while it grows, then its size."""
    return f"Thinking ({len(reasoning.split())} words)" if answering else "Thinking…"


def markdown_output(text: str) -> tuple[dict[str, Any], ...]:
    """An Output widget's outputs showing ``text`` as Markdown."""
    return ({"output_type": "display_data", "data": {"text/markdown": text, "text/plain": text}, "metadata": {}},)


class LiveBox:
    """Tool steps (if any), the thinking in an Accordion, and the answer with its footer, updated in place."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.above = w.Output()
        self.thinking_text = w.HTML()
        self.thinking = w.Accordion(children=[self.thinking_text], titles=("Thinking…",), selected_index=0)
        self.answer = w.Output()
        self.box = w.VBox([theme.style_widget(), self.above, self.thinking, self.answer])
        self.box.add_class("wm-chat")
        self.thinking.add_class("wm-chat-thinking")
        self.answer.add_class("wm-answer")
        self.touched = False  # the reader opened or closed the thinking: from now on only they do
        self._ours = False
        self._shown: tuple[str, str, str] = ("", "", "")
        self._answering = False
        self.thinking.observe(self._toggled, names="selected_index")

    def _toggled(self, _change: Any) -> None:
        if not self._ours:
            self.touched = True

    def _select(self, index: int | None) -> None:
        self._ours = True
        try:
            self.thinking.selected_index = index
        finally:
            self._ours = False

    @property
    def choice(self) -> bool | None:
        """Whether the reader left the thinking open (True) or closed (False); None if they never touched it."""
        return (self.thinking.selected_index == 0) if self.touched else None

    def show(self, above: str, reasoning: str, answer: str, *, answering: bool) -> None:
        """Bring the widgets up to date, sending only what changed."""
        if above != self._shown[0]:
            self.above.outputs = markdown_output(above) if above else ()
        if reasoning != self._shown[1]:
            self.thinking_text.value = thinking_html(reasoning)
        title = thinking_title(reasoning, answering)
        if self.thinking.titles != (title,):
            self.thinking.titles = (title,)
        if answer != self._shown[2]:
            self.answer.outputs = markdown_output(answer) if answer else ()
        if answering and not self._answering and not self.touched:
            self._select(None)  # the answer is what to read now
        self._shown, self._answering = (above, reasoning, answer), answering

    def bundle(self, plain: str) -> dict[str, Any]:
        """The widget view's display bundle, with ``plain`` as its text for front-ends without widgets."""
        return {**self.box._repr_mimebundle_(), "text/plain": plain}

    def close(self) -> None:
        self.box.close()


def keep_choice(markdown: str, choice: bool | None) -> str:
    """A final Markdown view with its (last) thinking block open or closed as the reader left it."""
    if choice is None:
        return markdown
    closed, opened = "<details><summary>Thinking", "<details open><summary>Thinking"
    before, mark, after = markdown.rpartition(opened if not choice else closed)
    if not mark:
        return markdown
    return before + (closed if not choice else opened) + after
