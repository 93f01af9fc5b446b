"""``%load_ext wcode_magic``: registers ``%%chat``, ``%%compare``, ``%%wcode`` and ``%wcode`` (thin; the work is in
``run`` and ``comparerun``).

In a Jupyter kernel a cell magic that returns a coroutine is not awaited, and a blocking cell cannot see widget
events (design.md, "Notebook execution"). So a cleanup input transformer rewrites a ``%%chat`` / ``%%wcode``
cell, and a one-line ``%wcode PROMPT`` cell, into ``await cell_async(...)`` (a ``%%compare`` cell into ``await
compare_async(...)``): top-level await on the kernel's
loop. The registered magics remain for the terminal and for ``run_cell_magic`` from code; they run the sync
client. Importing this module stays cheap: no httpx, pandas or widgets until a cell runs.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class, no_var_expand

_CELL = re.compile(r"%%(chat|wcode|compare)(?=\s|$)(.*)")
_LINE = re.compile(r"%wcode(?=\s|$)(.*)")


def transform(lines: list[str]) -> list[str]:
    """Cleanup transformer: ``%%chat LINE\\nCELL`` -> ``await ...cell_async('chat', LINE, CELL)``."""
    if not lines:
        return lines
    first = lines[0].rstrip("\r\n")
    m = _CELL.match(first)
    if m and m.group(1) == "compare":
        call = "__import__('wcode_magic.notebook.comparerun', fromlist=['compare_async']).compare_async"
        return [f"await {call}({m.group(2)!r}, {''.join(lines[1:])!r})\n"]
    if m:
        magic, line, cell = m.group(1), m.group(2), "".join(lines[1:])
    else:
        m = _LINE.match(first)
        if not m or any(rest.strip() for rest in lines[1:]):
            return lines
        from .commands import is_command

        line = m.group(1)
        if not line.strip() or is_command(line):
            return lines
        magic, cell = "wcode-line", None
    return [
        f"await __import__('wcode_magic.notebook.run', fromlist=['cell_async']).cell_async({magic!r}, {line!r}, {cell!r})\n"
    ]


def _output(value: Any) -> Any:
    """Subcommands return text to print or an object to display."""
    if isinstance(value, str):
        print(value)
        return None
    return value


@magics_class
class WcodeMagics(Magics):
    """``%%chat`` keeps a conversation; ``%wcode``/``%%wcode`` answer once or run a subcommand."""

    @no_var_expand
    @cell_magic
    def chat(self, line: str, cell: str) -> Any:
        """Send the cell to the current model, continuing the conversation. Options: %wcode help."""
        from .run import cell_sync

        return cell_sync(self.shell, "chat", line, cell)

    @no_var_expand
    @cell_magic
    def compare(self, line: str, cell: str) -> Any:
        """Send the cell to several models at once (-m r1 -m v3.1 -m qwen3), side by side; returns wm.compare's
        DataFrame. In a notebook the cell awaits the runs (Stop all works meanwhile). Options: %%chat's request
        flags (%wcode help), -m repeated, -p NAME=V1,V2 (a swept parameter), -n RUNS, --concurrency N, -o NAME."""
        from .comparerun import cell_sync

        return cell_sync(self.shell, line, cell)

    @no_var_expand
    @line_cell_magic
    def wcode(self, line: str, cell: str | None = None) -> Any:
        """%wcode SUBCOMMAND (models, use, set, unset, config, key, history, usage, reset, help, panel) or PROMPT."""
        from .commands import dispatch, is_command
        from .run import cell_sync

        if cell is not None:
            return cell_sync(self.shell, "wcode", line, cell)
        if not line.strip() or is_command(line):
            return _output(dispatch(line))
        return cell_sync(self.shell, "wcode-line", line, None)


def load(ipython: Any) -> None:
    """Register the magics; in a kernel also install the transformer (once, even if loaded twice)."""
    ipython.register_magics(WcodeMagics)
    from .live import is_rich

    if is_rich(ipython):
        transformers = ipython.input_transformers_cleanup
        transformers[:] = [t for t in transformers if getattr(t, "__qualname__", "") != transform.__qualname__]
        transformers.append(transform)
