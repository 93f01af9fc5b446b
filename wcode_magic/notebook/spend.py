"""The cost check's question (core/budget.py) asked in a notebook: "could cost ¥X, only ¥Y left: send anyway?"

Why ``input()`` and not buttons: a plain ``wm.chat`` or ``wm.compare`` cell blocks the kernel while it waits, so a
button click would arrive only after the cell ends; a stdin prompt is answered while the cell waits, in JupyterLab
and in a terminal IPython alike, in a plain cell and in a ``%%chat`` cell (top-level await). Where no one can
answer, this says so (None) and the check refuses: outside IPython (a script), off the main thread, in a task that
is not the running cell's (a background task would send its prompt to a cell that has ended), and in a notebook
run without input (nbclient, ``jupyter nbconvert --execute``: ``StdinNotImplementedError``).

Code that does its work in a background task (the panel) cannot prompt: it checks first with
``budget.over(estimate)`` and asks with ``ask_with_buttons``, then sends inside ``budget.covered()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import html
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from .approve import await_choice

YES = ("y", "yes")
_CELL_TASKS = ("shell_main", "run_cell_async")  # ipykernel's task running a plain cell, and a top-level-await one
_CELL_WAITS: contextvars.ContextVar[bool] = contextvars.ContextVar("wcode_cell_waits", default=False)


def ask(question: str) -> bool | None:
    """True to send, False when declined, None when nobody can answer here (then the check refuses)."""
    if threading.current_thread() is not threading.main_thread() or not _in_cell():
        return None
    from IPython.core.error import StdinNotImplementedError

    try:
        answer = input(f"{question} [y/N] ")
    except (StdinNotImplementedError, EOFError):
        return None
    return answer.strip().lower() in YES


@contextlib.contextmanager
def cell_waits() -> Iterator[None]:
    """Tasks started inside belong to the running cell, which waits for them (``%%chat``'s driver): they may ask."""
    token = _CELL_WAITS.set(True)
    try:
        yield
    finally:
        _CELL_WAITS.reset(token)


def _in_cell() -> bool:
    """Whether a user's cell (or IPython prompt) is running in this thread, so a prompt reaches its reader."""
    ipython = sys.modules.get("IPython")  # never imported: not IPython, a script
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running: a terminal IPython's cell
        return True
    if task is None or _CELL_WAITS.get():
        return True
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_name in _CELL_TASKS


class SpendButtons:
    """``await ask_with_buttons(question)`` for code running in a background task (the panel): Send / Don't send
    buttons, answered by a click; ``SpendButtons.waiting`` holds the rows still waiting (as ``ButtonConfirm``)."""

    waiting: ClassVar[list[Any]] = []

    async def ask(self, question: str, show: Any = None) -> bool:
        """Shows the question with ``show(widget)`` (default: ``display``) and waits for a click."""
        import ipywidgets as w

        label = w.HTML(html.escape(question, quote=False))
        send = w.Button(description="Send anyway", button_style="warning", icon="play")
        cancel = w.Button(description="Don't send", icon="ban")
        for b in (send, cancel):
            b.layout.width = "auto"
            b.layout.min_width = "max-content"
        box = w.VBox([label, w.HBox([send, cancel])])
        box.add_class("wm-spend")
        if show is None:
            from IPython.display import display

            show = display
        allowed = await await_choice(send, cancel, box, SpendButtons.waiting, show)
        label.value = html.escape(("Sent: " if allowed else "Not sent: ") + question, quote=False)
        return allowed


async def ask_with_buttons(question: str, show: Any = None) -> bool:
    """Ask ``question`` with two buttons and wait for the click: True to send."""
    return await SpendButtons().ask(question, show)
