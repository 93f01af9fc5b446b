"""``CompareView``: several runs of one prompt streaming side by side, one column each, with a Stop all.

What it runs is exactly ``wm.compare``'s grid (``sweeps.plan_compare``: the same checks, cells and requests), and
``await view`` / ``view.frame()`` give the DataFrame ``wm.compare`` returns for those runs. Only the showing is
new: every run's events reach its column as they arrive (``sweeps.run_plan``'s ``watch``), so all columns grow
at once.

Why a task: a click (Stop all) is handled only while the loop is free (design.md, "Notebook execution"), so
``start()`` schedules the runs as a task on the running loop (the kernel's: ipykernel 7 runs comm callbacks on
it), or on the client's worker loop where none runs, and returns at once. ``stop()`` cancels that task: every run
ends, each marks its Response stopped, and the partial answers stay in their columns, reading "stopped" (a
neutral state, not an error). A run that fails shows its error in its own column only.

Each column redraws at most ``per_second`` times a second (12: with the first and the final redraw it stays
within 15 in any second) and always once more at the end with the exact final text. Above ``COLUMNS_MAX`` runs
the columns become a compact grid, ``GRID_PER_ROW`` to a row; in a narrow notebook columns wrap to the next row
rather than shrink below ``MIN_WIDTH``. Colours come from JupyterLab's CSS variables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import html
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..analysis import sweeps
from ..core.errors import error_text
from . import theme
from .thinking import ThinkingSection, markdown, thought_title
from .throttle import Throttle

if TYPE_CHECKING:
    from collections.abc import Generator

    import pandas as pd

    from ..core.response import Response

COLUMNS_MAX = 6  # runs shown as one row of columns; more become a compact grid
GRID_PER_ROW = 3
GAP_PX = 8
MIN_WIDTH = {False: "14em", True: "12em"}  # (compact?) narrower than this, columns wrap to the next row
UPDATES_PER_SECOND = 12.0
ENDED = ("done", "stopped", "error")

STYLE = """<style>
.wm-compare-grid { align-items: start; }
.wm-compare-col { min-width: 0; border: 1px solid var(--jp-border-color2); border-radius: 4px; padding: 6px 8px;
  background: var(--jp-layout-color1); color: var(--jp-ui-font-color1); }
.wm-compare-head { font-weight: 600; overflow-wrap: break-word; }
.wm-compare-head .wm-compare-params { font-weight: normal; color: var(--jp-ui-font-color1); }
.wm-compare-foot { color: var(--jp-ui-font-color1); font-size: var(--jp-ui-font-size0); overflow-wrap: break-word; }
.wm-compare .wm-thinking-text { white-space: pre-wrap; overflow-wrap: break-word; word-break: normal; margin: 0;
  max-height: 16em; overflow-y: auto; color: var(--jp-ui-font-color1); }
.wm-compare .wm-compare-col .widget-html-content { line-height: 1.4; }
/* A bounded box that follows the stream: a reversed flex column stays scrolled to its end as text grows, until
   the reader scrolls up (then it stays where the reader is). */
.wm-compare-answer { overflow-wrap: break-word; word-break: normal; max-height: 28em; overflow-y: auto;
  display: flex !important; flex-direction: column-reverse; }
.wm-compare-answer > * { flex-shrink: 0; }
.wm-compare-compact .wm-compare-col { padding: 4px 6px; font-size: var(--jp-ui-font-size0); }
.wm-compare-compact .wm-compare-answer { max-height: 12em; }
.wm-compare-bar { align-items: center; gap: 8px; }
.wm-compare-status { color: var(--jp-ui-font-color1); }
</style>"""


def grid_columns(per_row: int, min_width: str) -> str:
    """CSS grid columns: ``per_row`` to a row where they fit, fewer (wrapping) where each would be narrower than
    ``min_width``, so a narrow notebook gets readable columns rather than slivers."""
    share = f"calc((100% - {(per_row - 1) * GAP_PX}px) / {per_row})"
    return f"repeat(auto-fill, minmax(max({min_width}, {share}), 1fr))"


def header_html(labels: dict[str, Any], varied: list[str]) -> str:
    """A column's title: its model, then the settings that differ between the runs (``temperature 0.2``)."""
    params = " · ".join(f"{name} {_short(labels[name])}" for name in varied)
    extra = f" <span class='wm-compare-params'>· {html.escape(params)}</span>" if params else ""
    return f"<div class='wm-compare-head'>{html.escape(str(labels['model']))}{extra}</div>"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def varied_labels(labels: list[dict[str, Any]]) -> list[str]:
    """The label names (but ``model``) whose values differ between the runs: what tells the columns apart."""
    names = [name for name in labels[0] if name != "model"] if labels else []
    return [name for name in names if len({repr(each.get(name)) for each in labels}) > 1]


def footer_text(state: str, response: Response | None, pieces: int) -> str:
    """State, time to first token, tokens and cost: counted pieces while streaming, the usage once it ended."""
    parts = [state]
    if response is None:
        return state
    if response.ttft_s is not None:
        parts.append(f"first token {response.ttft_s:.2f} s")
    tokens = response.usage.completion_tokens
    if tokens is not None and state in ENDED:
        parts.append(f"{tokens} tokens")
    elif pieces:
        parts.append(f"{pieces} pieces")
    cost = response.cost
    if cost is not None and state in ENDED:
        parts.append(f"¥{cost:.6f}".rstrip("0").rstrip(".") if cost else "¥0")
    if response.latency_s is not None and state in ENDED:
        parts.append(f"{response.latency_s:.2f} s")
    return " · ".join(parts)


@dataclass
class Column:
    """One run's column: its widgets, its Response as it streams, and how often it was redrawn (``pushes``: the
    monotonic time of each redraw, for the tests and the benchmark)."""

    index: int
    labels: dict[str, Any]
    box: Any
    section: ThinkingSection
    answer: Any
    footer: Any
    error: Any
    throttle: Throttle
    state: str = "waiting"
    response: Response | None = None
    pieces: int = 0
    started: float = 0.0
    first_content: float | None = None
    pushes: list[float] = field(default_factory=list)
    folded: bool = False  # the thinking was folded away when the answer started
    _shown: tuple[int, int] = (0, 0)

    @property
    def updates(self) -> int:
        return len(self.pushes)

    @property
    def thinking(self) -> Any:
        return self.section.accordion

    @property
    def thinking_text(self) -> Any:
        return self.section.text

    @property
    def user_chose_thinking(self) -> bool:
        """The reader opened or closed the thinking: the view never changes it again."""
        return self.section.reader_chose


class CompareView:
    """``wm.compare``'s runs streaming side by side. Takes ``wm.compare``'s arguments; checks them at once.

    ``start()`` starts every run (returns at once), ``stop()`` stops them all (partials kept), ``await view`` or
    ``await view.wait()`` gives the DataFrame when they end, ``frame()`` the DataFrame of the runs ended so far;
    ``widget`` is the widget (displaying the view shows it). ``concurrency`` defaults to every run at once.
    """

    def __init__(
        self,
        prompt: sweeps.Prompt,
        models: Any = None,
        temperature: Any = None,
        seed: Any = None,
        n: int = 1,
        concurrency: int | None = None,
        *,
        grid: Any = None,
        per_second: float = UPDATES_PER_SECOND,
        **fixed: Any,
    ) -> None:
        import ipywidgets as w

        if concurrency is None:  # every run at once, as the columns promise (bounded by the connection pool)
            plan = sweeps.plan_compare(prompt, models, temperature, seed, n, grid=grid, **fixed)
            concurrency = min(len(plan.cells), sweeps.MAX_CONCURRENCY)
            plan = dataclasses.replace(plan, concurrency=concurrency)
        else:
            plan = sweeps.plan_compare(prompt, models, temperature, seed, n, concurrency, grid=grid, **fixed)
        self.plan = plan
        self.per_second = per_second
        self.outcomes: dict[int, sweeps.Outcome] = {}
        self.stopped = False
        self._task: asyncio.Future[Any] | concurrent.futures.Future[Any] | None = None
        self._t0 = 0.0
        self._ended = False

        varied = varied_labels([cell.labels for cell in plan.cells])
        self.columns = [self._column(w, cell.index, cell.labels, varied) for cell in plan.cells]
        self.compact = len(self.columns) > COLUMNS_MAX
        self.per_row = GRID_PER_ROW if self.compact else len(self.columns)
        self.grid = w.GridBox(
            [c.box for c in self.columns],
            layout=w.Layout(
                grid_template_columns=grid_columns(self.per_row, MIN_WIDTH[self.compact]),
                grid_gap=f"{GAP_PX}px",
                width="100%",
            ),
        )
        self.grid.add_class("wm-compare-grid")
        if self.compact:
            self.grid.add_class("wm-compare-compact")
        self.stop_button = w.Button(description="Stop all", icon="stop", disabled=True, tooltip="Stop every run")
        self.stop_button.add_class("wm-compare-stop")
        self.stop_button.on_click(lambda _b: self.stop())
        self.status = w.HTML(self._status_html())
        self.status.add_class("wm-compare-status")
        bar = w.HBox([self.stop_button, self.status])
        bar.add_class("wm-compare-bar")
        self.widget = w.VBox([theme.style_widget(), w.HTML(STYLE), bar, self.grid])  # colours: theme.py
        self.widget.add_class("wm-compare")

    def _column(self, w: Any, index: int, labels: dict[str, Any], varied: list[str]) -> Column:
        head = w.HTML(header_html(labels, varied))
        section = ThinkingSection(hidden=True)
        section.accordion.add_class("wm-compare-thinking")
        answer = w.Output()
        answer.add_class("wm-compare-answer")
        error = w.HTML("")
        error.add_class("wm-compare-error")
        footer = w.HTML("<div class='wm-compare-foot'>waiting</div>")
        box = w.VBox([head, section.accordion, answer, error, footer])
        box.add_class("wm-compare-col")
        return Column(index, labels, box, section, answer, footer, error, Throttle(self.per_second))

    # -- display ---------------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kw: Any) -> Any:
        """The widget, with a one-line plain-text form for a saved notebook read without a kernel (GitHub,
        nbviewer): what ran, not the VBox's nested repr, and no state (it is saved as it was when first shown)."""
        bundle = self.widget._repr_mimebundle_(**kw)
        if isinstance(bundle, dict) and "text/plain" in bundle:
            models = ", ".join(dict.fromkeys(str(c.labels["model"]) for c in self.columns))
            bundle = {**bundle, "text/plain": f"CompareView: {len(self.columns)} runs of {models}, side by side"}
        return bundle

    @property
    def state(self) -> str:
        if self._task is None:
            return "not started"
        if self.running:
            return "running"
        return "stopped" if self.stopped else "done"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def summary(self) -> str:
        """How many runs, and how many are in each state ("3 runs · 2 done · 1 stopped")."""
        counts: dict[str, int] = {}
        for c in getattr(self, "columns", []):
            counts[c.state] = counts.get(c.state, 0) + 1
        return " · ".join([f"{len(self.plan.cells)} runs"] + [f"{n} {state}" for state, n in counts.items()])

    def _status_html(self) -> str:
        return f"<span class='wm-compare-status-text'>{html.escape(self.summary())}</span>"

    # -- running ---------------------------------------------------------------------------------------------
    def start(self) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
        """Start every run and return at once (the task); a second call returns the same task."""
        if self._task is not None:
            return self._task
        self._t0 = time.perf_counter()
        for c in self.columns:
            c.started = self._t0
        self.stop_button.disabled = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here (a plain script): the client's worker loop
            from ..core.client import LOOP

            self._task = asyncio.run_coroutine_threadsafe(self._run(), LOOP.loop())
        else:
            self._task = loop.create_task(self._run())
        self._task.add_done_callback(self._settle)
        return self._task

    def _settle(self, task: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
        """A Stop all that lands before the task's first step cancels it without running ``_run``: end the view
        here, so its columns do not stay "waiting" with Stop all enabled."""
        if not self._ended:
            self.stopped = True
            self._end()

    def stop(self) -> None:
        """Stop every run still going; what arrived stays in its column, marked stopped."""
        if self.running and self._task is not None:
            self.stopped = True
            self._task.cancel()

    async def wait(self) -> pd.DataFrame:
        """Start if needed, wait until every run ended (or was stopped), and return the DataFrame."""
        task = self.start()
        waiting = asyncio.wrap_future(task) if isinstance(task, concurrent.futures.Future) else task
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            if not task.cancelled():  # our caller was cancelled, not the runs
                raise
        return self.frame()

    def __await__(self) -> Generator[Any, None, pd.DataFrame]:
        return self.wait().__await__()

    def frame(self) -> pd.DataFrame:
        """The DataFrame ``wm.compare`` returns for these runs, with the runs ended so far (all, once done).
        A stopped run is a row with its partial Response (``complete`` False, no error)."""
        df = sweeps.plan_table(self.plan, self.outcomes)
        df.attrs["stopped"] = sum(c.state == "stopped" for c in self.columns)
        df.attrs["interrupted"] = self.stopped
        return df

    async def _run(self) -> None:
        try:
            await sweeps.run_plan(self.plan, self.outcomes, self._watch)
        except asyncio.CancelledError:
            self.stopped = True
        finally:
            self._end()

    def _watch(self, index: int, ev: Any) -> None:
        """Every event of every run: called on the loop the runs run on, tens of thousands of times."""
        column = self.columns[index]
        kind = ev[0]
        if kind == "content":
            if column.first_content is None:
                column.first_content = time.perf_counter()
            column.state = "answering"
        elif kind == "reasoning":
            if column.state == "waiting":
                column.state = "thinking"
        else:
            if kind == "start":
                column.response = ev[1]
                column.started = time.perf_counter()
            return
        column.pieces += 1
        if column.throttle.ready():
            self._push(column)

    def _push(self, column: Column, force: bool = False) -> None:
        """Send what changed in one column to its widgets (one throttled update; ``force``: everything)."""
        r = column.response
        if r is None:
            return
        reasoning, text = r.reasoning, r.text
        if reasoning and (force or len(reasoning) != column._shown[0]):  # a model without thinking shows none
            column.section.show(reasoning)
            if column.thinking.layout.display == "none":
                column.thinking.layout.display = None
                column.section.set_open(True)  # open while it thinks
        if force or len(text) != column._shown[1]:
            column.answer.outputs = markdown(text)
            if reasoning and text and not column.folded:
                column.folded = True
                column.section.set_open(False)  # the answer started: fold the thinking away
        if reasoning:
            column.thinking.set_title(0, self._thinking_title(column))
        column._shown = (len(reasoning), len(text))
        column.footer.value = (
            f"<div class='wm-compare-foot'>{html.escape(footer_text(column.state, r, column.pieces))}</div>"
        )
        column.pushes.append(time.monotonic())
        status = self._status_html()
        if status != self.status.value:  # a run changed state
            self.status.value = status

    @staticmethod
    def _thinking_title(column: Column) -> str:
        if column.first_content is None and column.state not in ENDED:
            return thought_title(None)
        return thought_title((column.first_content or time.perf_counter()) - column.started)

    def _end(self) -> None:
        """Every run ended: final states, the exact final texts, the errors in their own columns."""
        self._ended = True
        now = time.perf_counter()
        for column in self.columns:
            out = self.outcomes.get(column.index)
            if out is None:  # stopped: keep what arrived
                out = sweeps.Outcome(column.response, None, now - column.started)
                self.outcomes[column.index] = out
                column.state = "stopped"
            elif out.error is not None:
                column.state = "error"
                column.error.value = f"<div class='wm-error-text'>{html.escape(error_text(out.error))}</div>"
            else:
                column.state = "done" if out.response is not None and out.response.complete else "stopped"
            column.response = out.response
            if column.response is not None:
                self._push(column, force=True)  # the exact final text, whatever the throttle said
                if not column.response.text and column.state == "done":
                    missing = column.response.no_answer_reason()
                    if missing:
                        column.answer.outputs = markdown(f"**No answer:** {html.escape(missing)}.")
            else:
                column.footer.value = f"<div class='wm-compare-foot'>{html.escape(column.state)}</div>"
                column.pushes.append(time.monotonic())
        self.stop_button.disabled = True
        self.status.value = self._status_html()
