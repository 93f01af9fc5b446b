"""Live views of a streaming Response: a display handle updated in place in a notebook, plain text in a terminal.

The driver (``wcode_magic.notebook.run``) calls ``begin`` before sending, ``update`` on every tick while the stream runs
(from the cell's own thread, never from the HTTP worker: output from another thread can land in the wrong
cell), and ``finish`` once at the end. The notebook view re-renders at most ~15 times a second
(``Throttle``; re-sending a growing Markdown answer per token is quadratic and front-ends drop bursts) and its
last render always carries the exact final text.
"""

from __future__ import annotations

import html
import sys
from typing import Any, Protocol, TextIO

from ..core.response import Response
from ..core.stream import Event
from ..core.toolloop import ToolRun
from . import toolview
from .livebox import LiveBox, keep_choice
from .throttle import Throttle

TOOL_EVENTS = ("tools", "tool_call_ready", "tool_result")  # a tool loop's own events (core/toolloop.py)


class View(Protocol):
    def begin(self, model: str) -> None: ...
    def update(self, response: Response) -> None: ...
    def finish(self, response: Response | None, note: str | None = None) -> None: ...
    def result(self, value: Any) -> Any: ...
    def tool_event(self, event: Event) -> None: ...


def is_rich(shell: Any) -> bool:
    """True in a Jupyter kernel (display handles render there); False in a terminal IPython."""
    return shell is not None and type(shell).__module__.startswith("ipykernel")


# -- pure rendering ------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return "> " + text.replace("\n", "\n> ")


def _close_fences(text: str) -> str:
    """A half-streamed answer may have opened a code fence: close it so the footer is not swallowed."""
    return text + "\n```" if text.count("```") % 2 else text


def code_blocks(text: str) -> tuple[str, str]:
    """(language, code) of the fenced blocks in an answer joined; the whole text when there is no fence."""
    lang, inside = "", False
    blocks: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            if inside:
                blocks.append("\n".join(current))
                current, inside = [], False
            else:
                inside = True
                lang = lang or stripped[3:].strip()
            continue
        if inside:
            current.append(line)
    if inside and current:  # a stopped stream: keep the open block
        blocks.append("\n".join(current))
    if not blocks:
        return "", text.strip()
    return lang, "\n\n".join(blocks).strip() + "\n"


def render_markdown(
    reasoning: str, text: str, footer: str, *, streaming: bool, fmt: str = "markdown", no_answer: str | None = None
) -> str:
    """Thinking in a ``<details>`` (open while it streams, closed once the answer starts), the answer, the footer.

    ``no_answer``: why a finished answer is empty (``Response.no_answer_reason``), said where the answer would be.
    """
    parts: list[str] = []
    if reasoning:
        thinking_now = streaming and not text
        summary = "Thinking…" if thinking_now else f"Thinking ({len(reasoning.split())} words)"
        parts.append(
            f"<details{' open' if thinking_now else ''}><summary>{summary}</summary>\n\n{_quote(reasoning)}\n\n</details>\n"
        )
    if no_answer and not text and not streaming:
        parts.append(f"**No answer:** {html.escape(no_answer)}.")
    elif fmt == "code" and not streaming:
        lang, code = code_blocks(text)
        parts.append(f"```{lang}\n{code}```" if code.endswith("\n") else f"```{lang}\n{code}\n```")
    elif fmt == "text":
        parts.append("<pre>" + html.escape(text) + "</pre>")
    else:
        parts.append(_close_fences(text) if streaming else text)
    if footer:
        parts.append(f"\n<sub>{html.escape(footer)}</sub>")
    return "\n".join(parts)


def render_plain(reasoning: str, text: str, footer: str, no_answer: str | None = None) -> str:
    """The same view for front-ends (and tests) that read ``text/plain``."""
    parts = []
    if reasoning:
        parts.append("[thinking]\n" + reasoning + "\n[answer]")
    parts.append(text or (f"(no answer: {no_answer})" if no_answer else ""))
    if footer:
        parts.append(footer)
    return "\n".join(parts)


def streaming_footer(response: Response) -> str:
    phase = "answering" if response.text else ("thinking" if response.reasoning else "waiting")
    return f"{response.model or response.request.get('model', '?')} · {phase}…"


# -- notebook --------------------------------------------------------------------------------------------------
class NotebookView:
    """One display output updated in place (``display_id``), throttled, that ends as the cell's result.

    The result goes into the same output rather than a separate ``Out[n]``: emptying the live output and then
    returning the result would leave an empty output in the saved notebook, and clearing the cell's outputs
    would take earlier warnings with it.

    Once thinking streams (Markdown and code formats), the output shows a ``LiveBox`` of widgets instead, updated
    in place so the reader's open/closed choice on the thinking holds; the output itself is re-sent only when the
    phase changes (thinking, answering, a tool step) and at the end, as static Markdown that keeps the reader's
    choice.
    """

    def __init__(self, fmt: str = "markdown", per_second: float = 15.0, shell: Any = None) -> None:
        self.fmt = fmt
        self.shell = shell
        self.throttle = Throttle(per_second)
        self.handle: Any = None
        self._shown: tuple[int, int, int] = (0, 0, 0)
        self.run: ToolRun | None = None  # a tool loop's record, drawn above the step that streams
        self._now = False
        self.live: LiveBox | None = None
        self._phase: tuple[bool, int] | None = None  # (answering, tool turns) last announced while ``live`` shows
        self.choice: bool | None = None  # the reader's open/closed choice on the thinking, kept at the end

    def _bundle(self, markdown: str, plain: str) -> dict[str, str]:
        if self.fmt == "text":
            return {"text/plain": plain}
        return {"text/markdown": markdown, "text/plain": plain}

    def _show(self, bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        if self.handle is None:
            from IPython.display import display

            self.handle = display(bundle, raw=True, metadata=metadata, display_id=True)
        else:
            self.handle.update(bundle, raw=True, metadata=metadata)

    def begin(self, model: str) -> None:
        self._show(self._bundle(f"<sub>{html.escape(model)} · waiting…</sub>", f"{model} · waiting…"))

    def tool_event(self, event: Event) -> None:
        """A tool loop started, a call is about to run, or a result came in: drawn at the next update."""
        if event.kind == "tools":
            self.run = event.value
        self._now = True  # a call or a result shows at once, not when the throttle next allows

    def _split(
        self, markdown: str, plain: str, response: Response | None, *, running: bool
    ) -> tuple[str, str, str, str, Response | None]:
        """A tool loop's finished steps (Markdown, plain) to draw above the Response shown, and what it shows."""
        run = self.run
        if run is None or not run.turns:
            return "", "", markdown, plain, response
        if response is not None and response.tool_calls and any(response is s for s in run.steps):
            # its calls are running: drawn with the steps above, and nothing streams below
            what = f"{response.model or '?'} · running {', '.join(str(c['function']['name']) for c in response.tool_calls)}…"
            markdown, plain, response = f"<sub>{html.escape(what)}</sub>", what, None
        above_md = toolview.markdown(run.turns, run.steps, response, running=running)
        above_plain = toolview.plain(run.turns, run.steps, response)
        return above_md, above_plain, markdown, plain, response

    def _steps(self, markdown: str, plain: str, response: Response | None, *, running: bool) -> dict[str, str]:
        """The bundle, with a tool loop's finished steps above the Response shown."""
        above_md, above_plain, markdown, plain, _ = self._split(markdown, plain, response, running=running)
        return self._bundle(
            f"{above_md}\n{markdown}" if above_md else markdown, f"{above_plain}\n{plain}" if above_plain else plain
        )

    def update(self, response: Response) -> None:
        reasoning, text = response.reasoning, response.text
        size = (len(reasoning), len(text), len(self.run.turns) if self.run is not None else 0)
        if size == self._shown or not (self._now or self.throttle.ready()):
            return
        self._shown, self._now = size, False
        footer = streaming_footer(response)
        plain = render_plain(reasoning, text, footer)
        if self.live is not None or (reasoning and self.fmt != "text"):
            self._update_live(response, footer, plain)
            return
        markdown = render_markdown(reasoning, text, footer, streaming=True, fmt=self.fmt)
        self._show(self._steps(markdown, plain, response, running=True))

    def _update_live(self, response: Response, footer: str, plain: str) -> None:
        """The widgets follow the stream; the output itself is re-sent only when the phase changes (thinking,
        answering, a tool step), with a Markdown snapshot beside the widget for front-ends without widgets."""
        answer = render_markdown("", response.text, footer, streaming=True, fmt=self.fmt)
        above_md, _, answer, _, shown = self._split(answer, plain, response, running=True)
        if self.live is None:
            self.live = LiveBox()
        reasoning = shown.reasoning if shown is not None else ""
        self.live.show(above_md, reasoning, answer, answering=bool(response.text))
        phase = (bool(response.text), len(self.run.turns) if self.run is not None else 0)
        if phase != self._phase:
            self._phase = phase
            snapshot = self._steps(
                render_markdown(reasoning, response.text, footer, streaming=True, fmt=self.fmt),
                plain,
                response,
                running=True,
            )
            self._show({**snapshot, **self.live.bundle(snapshot["text/plain"])})

    def _final(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A static bundle with the thinking open or closed as the reader left it."""
        if "text/markdown" in bundle:
            bundle = {**bundle, "text/markdown": keep_choice(bundle["text/markdown"], self.choice)}
        return bundle

    def finish(self, response: Response | None, note: str | None = None) -> None:
        live, self.live = self.live, None
        if live is not None:
            self.choice = live.choice  # kept for the static view (and the result shown after it)
        try:
            self._finish(response, note)
        finally:
            if live is not None:  # once the output no longer shows them
                live.close()

    def _finish(self, response: Response | None, note: str | None) -> None:
        if response is None:
            self._show(self._bundle(f"<sub>{html.escape(note or '')}</sub>", note or ""))
            return
        footer = response.footer() + (f" · {note}" if note else "")
        reasoning, text, missing = response.reasoning, response.text, response.no_answer_reason()
        bundle = self._steps(
            render_markdown(reasoning, text, footer, streaming=False, fmt=self.fmt, no_answer=missing),
            render_plain(reasoning, text, footer, missing),
            response,
            running=False,
        )
        self._show(self._final(bundle))

    def result(self, value: Any) -> None:
        """Show the cell's result in the live output, formatted as IPython would show ``Out[n]``, and keep it in
        ``_`` and ``Out`` as a returned result would be; the cell then returns None."""
        shell = self.shell
        if shell is None:
            from IPython import get_ipython

            shell = get_ipython()
        data, metadata = shell.display_formatter.format(value)
        self._show(self._final(data), metadata or None)
        shell.displayhook.update_user_ns(value)


# -- terminal --------------------------------------------------------------------------------------------------
class TerminalView:
    """Streams plain text to a terminal: the thinking (dimmed on a tty), then the answer, then the footer."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        tty = getattr(self.out, "isatty", lambda: False)()
        self._dim, self._reset = ("\033[2m", "\033[0m") if tty else ("", "")
        self._reasoning_shown = 0
        self._text_shown = 0

    def _write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()

    def begin(self, model: str) -> None:
        self._write(f"{self._dim}[{model}]{self._reset}\n")

    def tool_event(self, event: Event) -> None:
        """A tool loop's call and result, each on its own line as it happens; the next step streams afresh."""
        if event.kind == "tool_call_ready":
            if self._reasoning_shown or self._text_shown:
                self._write(f"{self._reset}\n")
            self._reasoning_shown = self._text_shown = 0
            self._write(toolview.call_started(event.value) + "\n")
        elif event.kind == "tool_result":
            self._write(toolview.call_ended(event.value) + "\n")

    def update(self, response: Response) -> None:
        reasoning = response.reasoning
        if len(reasoning) > self._reasoning_shown and not self._text_shown:
            if not self._reasoning_shown:
                self._write(f"{self._dim}[thinking]\n")
            self._write(reasoning[self._reasoning_shown :])
            self._reasoning_shown = len(reasoning)
        text = response.text
        if len(text) > self._text_shown:
            if not self._text_shown and self._reasoning_shown:
                self._write(f"{self._reset}\n[answer]\n")
            self._write(text[self._text_shown :])
            self._text_shown = len(text)

    def finish(self, response: Response | None, note: str | None = None) -> None:
        if response is not None:
            self.update(response)
            if self._reasoning_shown and not self._text_shown:
                self._write(self._reset)
            missing = response.no_answer_reason()
            if missing:
                self._write(f"\n(no answer: {missing})")
            footer = response.footer() + (f" · {note}" if note else "")
            self._write(f"\n{self._dim}{footer}{self._reset}\n")
        elif note:
            self._write(f"{self._dim}{note}{self._reset}\n")

    def result(self, value: Any) -> Any:
        """The streamed text stays printed; the result is the cell's own (``Out[n]``)."""
        return value


# -- cell results for --format text / code ------------------------------------------------------------------
class PlainText(str):
    """The answer as a ``str`` that displays as itself (no quotes, no escaped newlines)."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class CodeText(str):
    """The answer's code as a ``str`` (``exec``-able, ``set_next_input``-able) that displays as a code block."""

    language: str

    def __new__(cls, code: str, language: str = "") -> CodeText:
        obj = super().__new__(cls, code)
        obj.language = language
        return obj

    def _repr_markdown_(self) -> str:
        return f"```{self.language}\n{self.rstrip()}\n```"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
