"""One exchange of the panel's transcript: the question, the tool steps, the thinking, the answer, the footer.

Each Send gets its own ``Turn``; a finished turn is never touched again, so streaming the newest answer costs the
same whatever the conversation's length (only the live turn's widgets change). The thinking is a
``thinking.ThinkingSection``: it opens while the thinking streams and closes once the answer starts, until the
reader toggles it.
"""

from __future__ import annotations

import html
import time

from .thinking import WRAP, ThinkingSection, markdown, thought_title


def question_html(prompt: str) -> str:
    """The reader's own message, set apart from the answers by a rule in the theme's brand colour."""
    style = f"{WRAP};font-family:inherit;font-weight:600;border-left:3px solid var(--jp-brand-color1);padding-left:8px"
    return f"<div class='wm-user-text' style='{style}'>{html.escape(prompt)}</div>"


class Turn:
    """The widgets of one exchange; ``box`` goes into the transcript."""

    def __init__(self, prompt: str = "") -> None:
        import ipywidgets as w

        self.question = w.HTML(question_html(prompt))
        self.steps = w.Output()
        self.section = ThinkingSection(thought_title(None), hidden=True)
        self.thinking_text, self.thinking = self.section.text, self.section.accordion
        self.live = w.HTML()  # the answer as it streams: plain text (see ``show_live``)
        self.answer = w.Output()  # the answer once it ended: Markdown
        self.tokens = w.HTML()  # the token heat map of a finished answer with logprobs
        self.footer = w.HTML()
        for cls, widget in (
            ("wm-user", self.question),
            ("wm-steps", self.steps),
            ("wm-thinking", self.thinking),
            ("wm-answer-live", self.live),
            ("wm-answer", self.answer),
            ("wm-heatmap", self.tokens),
            ("wm-footer", self.footer),
        ):
            widget.add_class(cls)
        self.asked = bool(prompt)  # False: the empty turn of a new conversation, waiting for its first Send
        if not prompt:
            self.question.layout.display = "none"
        self.box = w.VBox([self.question, self.steps, self.thinking, self.live, self.answer, self.tokens, self.footer])
        self.box.add_class("wm-turn")
        self.thinking_since: float | None = None
        self.thought_s: float | None = None

    def ask(self, prompt: str) -> None:
        """Show the question (the turn was made before the first Send)."""
        self.question.value = question_html(prompt)
        self.question.layout.display = None
        self.asked = True

    def show_thinking(self, reasoning: str) -> None:
        self.section.show(reasoning)
        if self.thinking.layout.display == "none":
            self.thinking.layout.display = None
            self.section.set_open(True)  # open while it streams

    def started_thinking(self) -> None:
        if self.thinking_since is None:
            self.thinking_since = time.perf_counter()

    def started_answer(self) -> None:
        """The first answer token: the header says how long the thinking took, and the thinking closes."""
        if self.thinking_since is not None and self.thought_s is None:
            self.thought_s = time.perf_counter() - self.thinking_since
            self.thinking.set_title(0, thought_title(self.thought_s))
            self.section.set_open(False)

    def end_thinking(self) -> None:
        """The stream ended while still thinking (stopped, or the budget went to the thinking)."""
        if self.thinking_since is not None and self.thought_s is None:
            self.thought_s = time.perf_counter() - self.thinking_since
            self.thinking.set_title(0, thought_title(self.thought_s))

    def show_live(self, text: str) -> None:
        """The answer so far, as text that wraps at words.

        Plain HTML while it streams, Markdown once it ends (``show_answer``): JupyterLab re-renders an Output's
        Markdown asynchronously, so each update empties it for a frame and the transcript's scroll position
        snaps back to the bottom -- a reader who scrolled up to read would be thrown down 15 times a second. An
        HTML widget's text is replaced in one step, and the browser's scroll anchoring keeps their place.
        """
        self.live.value = f"<div class='wm-answer-text' style='{WRAP};font-family:inherit'>{html.escape(text)}</div>"

    def show_answer(self, text: str) -> None:
        """The finished (or stopped) answer as Markdown, in place of the streamed text."""
        self.answer.outputs = markdown(text)
        self.live.value = ""

    def clear(self) -> None:
        """A new step of a tool loop streams here: its own thinking and answer."""
        self.thinking_text.value = ""
        self.thinking.layout.display = "none"
        self.answer.outputs = ()
        self.live.value = ""
        self.thinking_since = self.thought_s = None
        self.thinking.set_title(0, thought_title(None))
