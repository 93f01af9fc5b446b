"""A rate limit for display updates.

Jupyter front-ends drop or batch output that arrives too fast, and re-rendering a growing Markdown answer on
every token is quadratic (design.md): the live views redraw at most ``per_second`` times and always once more at
the end with the exact final text.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """``ready()`` is True at most ``per_second`` times a second; ``count`` says how often it was."""

    def __init__(self, per_second: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self.count = 0

    def ready(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.interval
        self.count += 1
        return True
