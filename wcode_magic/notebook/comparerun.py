"""One ``%%compare`` cell: options and prompt in, the runs side by side while they stream, ``wm.compare``'s DataFrame out.

How the cell runs, and why (design.md, "Notebook execution"): in a kernel the input transformer (``magics``)
rewrites a ``%%compare`` cell into ``await compare_async(...)``, top-level await on the kernel's loop. The cell
shows a ``CompareView``, starts its runs as a task and awaits them: the loop stays free, so the columns stream
live and a click on Stop all is handled mid-stream; Run All stays in order; and when the runs end the cell
returns the DataFrame, so ``Out[n]`` and ``_`` hold exactly what ``wm.compare`` returns for the same runs (``-o
NAME`` stores it too). Stop all and a kernel interrupt both stop every run and still return the DataFrame, the
stopped runs as rows with their partial answers (``complete`` False, no error): a stop is not a failure.

Without a widget front-end (terminal IPython, or the magic called from code) the cell runs ``wm.compare`` itself,
with its text progress line, and returns the same DataFrame.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..core import errors
from ..core.settings import SESSION
from . import flags
from .interpolate import interpolate
from .run import CellError, schema_value

if TYPE_CHECKING:
    import pandas as pd

NAME = "%%compare"


def prepare(shell: Any, line: str, cell: str | None) -> tuple[flags.CompareOptions, dict[str, Any]]:
    """The options checked and ``wm.compare``'s arguments built; nothing is sent. A bad option is a CellError
    naming it, its value and what it allows."""
    try:
        opts = flags.parse_compare(line)
    except (flags.FlagError, errors.InvalidParameterError) as e:
        raise CellError(f"{NAME}: {e}") from None
    prompt = (cell or "").strip("\n")
    try:
        if opts.interpolate and shell is not None:
            prompt = interpolate(prompt, shell.user_ns, SESSION.known_keys())
        schema = schema_value(opts.schema, shell) if opts.schema is not None else None
    except errors.InvalidParameterError as e:
        raise CellError(f"{NAME}: {e.message}") from None
    if not prompt.strip():
        raise CellError(f"The prompt is empty: write it in the cell below the {NAME} line.")
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "models": [SESSION.resolve_model(m) for m in opts.models] or None,
        "n": opts.n,
        "grid": opts.grid or None,
        **opts.params,
    }
    optional = {
        "system": opts.system,
        "headers": opts.headers or None,
        "extra_body": opts.extra_body or None,
        "schema": schema,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    return opts, kwargs


def _keep(shell: Any, opts: flags.CompareOptions, df: pd.DataFrame) -> pd.DataFrame | None:
    if opts.out and shell is not None:
        shell.user_ns[opts.out] = df
    return None if opts.quiet else df


async def compare_async(line: str, cell: str | None) -> pd.DataFrame | None:
    """What a transformed ``%%compare`` cell awaits in a kernel: the view streams, the DataFrame is the result."""
    from IPython import get_ipython
    from IPython.display import display

    from .compareview import CompareView

    shell = get_ipython()
    opts, kwargs = prepare(shell, line, cell)
    try:
        view = CompareView(concurrency=opts.concurrency, **kwargs)
    except errors.InvalidParameterError as e:  # a value the model or the session refuses: nothing was sent
        raise CellError(f"{NAME}: {e.message}") from None
    from ..analysis.sweeps import cost_check

    with cost_check(view.plan):  # in the cell, before anything is sent: asked here, the runs inherit the cover
        display(view)
        view.start()
        try:
            df = await view.wait()
        except asyncio.CancelledError:  # a kernel interrupt: stop every run, keep and return what arrived
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):  # Python 3.11+
                task.uncancel()  # handled: the cell goes on to return the DataFrame
            view.stop()
            df = await view.wait()
    return _keep(shell, opts, df)


def cell_sync(shell: Any, line: str, cell: str | None) -> pd.DataFrame | None:
    """Without a widget front-end: ``wm.compare`` with its progress line, the same DataFrame."""
    from ..analysis.sweeps import compare

    opts, kwargs = prepare(shell, line, cell)
    try:
        df = compare(concurrency=opts.concurrency or 8, progress=True, **kwargs)
    except errors.InvalidParameterError as e:
        raise CellError(f"{NAME}: {e.message}") from None
    return _keep(shell, opts, df)
