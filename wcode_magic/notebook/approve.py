"""``%%chat --confirm`` in a notebook: Run / Decline buttons under each call, awaited.

A ``%%chat`` cell runs as top-level await (``run.py``), so a click is handled while the cell waits: the loop
awaits the answer instead of blocking on ``input()``. Once decided, the buttons are disabled and the line says
what was decided, so the saved notebook shows it. In a terminal ``--confirm`` stays a prompt
(``toolloop.ask_in_terminal``).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from typing import Any, ClassVar

from ..core.toolloop import ToolCall, shorten

ARGS_CHARS = 200


class ButtonConfirm:
    """A ``confirm=`` callable whose answer comes from two buttons; ``pending`` holds the buttons shown last and
    ``ButtonConfirm.waiting`` every row still waiting for a click (label, Run, Decline), in the session."""

    waiting: ClassVar[list[Any]] = []

    def __init__(self) -> None:
        self.pending: Any = None

    def __call__(self, call: ToolCall) -> Any:
        return self._ask(call)

    async def _ask(self, call: ToolCall) -> bool:
        import ipywidgets as w
        from IPython.display import display

        what = html.escape(f"{call.name}({shorten(call.arguments, ARGS_CHARS)})", quote=False)
        label = w.HTML(f"Run <code>{what}</code>?")
        run = w.Button(description="Run", button_style="success", icon="play")
        decline = w.Button(description="Decline", button_style="warning", icon="ban")
        for b in (run, decline):
            b.layout.width = "auto"
        box = w.HBox([label, run, decline])
        box.add_class("wm-confirm")
        self.pending = box
        allowed = await await_choice(run, decline, box, ButtonConfirm.waiting, display)
        label.value = f"{'Allowed' if allowed else 'Declined'}: <code>{what}</code>"
        return allowed


async def await_choice(yes: Any, no: Any, box: Any, waiting: list[Any], show: Callable[[Any], Any]) -> bool:
    """Show ``box`` (holding the ``yes`` and ``no`` buttons) and wait for a click: True for ``yes``. ``waiting``
    lists the boxes still waiting (tests click them); once decided both buttons are disabled, so the saved
    notebook shows a question that was answered."""
    decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def decide(value: bool) -> None:
        if not decided.done():
            decided.set_result(value)

    yes.on_click(lambda _b: decide(True))
    no.on_click(lambda _b: decide(False))
    waiting.append(box)
    show(box)
    try:
        return await decided
    finally:
        yes.disabled = no.disabled = True
        waiting.remove(box)
