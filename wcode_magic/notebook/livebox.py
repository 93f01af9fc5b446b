"""The streaming part of a ``%%chat`` output that thinks: widgets, so the reader's open/closed choice survives.

Why widgets (issue 16): the Markdown view was re-sent whole on every update, and a re-rendered ``<details>``
forgets that the reader collapsed it, so the thinking sprang open again within half a second. Here the thinking
is an Accordion whose open section is widget state: updates change only its text, and a click (synced back while
the ``%%chat`` cell awaits) is remembered. The kernel opens it while the thinking streams and closes it when the
answer starts, unless the reader has chosen; the final static Markdown (what the saved notebook keeps) opens or
closes the thinking as the reader left it (``choice``).
"""

from __future__ import annotations

from typing import Any

from . import theme
from .thinking import ThinkingSection, markdown


def thinking_title(reasoning: str, answering: bool) -> str:
    """The section header: "Thinking…" while it grows, then its size."""
    return f"Thinking ({len(reasoning.split())} words)" if answering else "Thinking…"


class LiveBox:
    """Tool steps (if any), the thinking in an Accordion, and the answer with its footer, updated in place."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.above = w.Output()
        self.section = ThinkingSection(is_open=True)  # open while it streams (the box shows once thinking does)
        self.thinking = self.section.accordion
        self.answer = w.Output()
        self.box = w.VBox([theme.style_widget(), self.above, self.thinking, self.answer])
        self.box.add_class("wm-chat")
        self.thinking.add_class("wm-chat-thinking")
        self.answer.add_class("wm-answer")
        self._shown: tuple[str, str, str] = ("", "", "")
        self._answering = False

    @property
    def choice(self) -> bool | None:
        """Whether the reader left the thinking open (True) or closed (False); None if they never touched it."""
        return self.section.choice

    def show(self, above: str, reasoning: str, answer: str, *, answering: bool) -> None:
        """Bring the widgets up to date, sending only what changed."""
        if above != self._shown[0]:
            self.above.outputs = markdown(above) if above else ()
        if reasoning != self._shown[1]:
            self.section.show(reasoning)
        title = thinking_title(reasoning, answering)
        if self.thinking.titles != (title,):
            self.thinking.titles = (title,)
        if answer != self._shown[2]:
            self.answer.outputs = markdown(answer) if answer else ()
        if answering and not self._answering:
            self.section.set_open(False)  # the answer is what to read now (unless the reader chose)
        self._shown, self._answering = (above, reasoning, answer), answering

    def bundle(self, plain: str) -> dict[str, Any]:
        """The widget view's display bundle, with ``plain`` as its text for front-ends without widgets."""
        return {**self.box._repr_mimebundle_(), "text/plain": plain}

    def close(self) -> None:
        self.box.close()


def keep_choice(view: str, choice: bool | None) -> str:
    """A final Markdown ``view`` with its (last) thinking block open or closed as the reader left it."""
    if choice is None:
        return view
    closed, opened = "<details><summary>Thinking", "<details open><summary>Thinking"
    before, mark, after = view.rpartition(opened if not choice else closed)
    if not mark:
        return view
    return before + (closed if not choice else opened) + after
