"""Concurrent sweeps: ``wm.compare`` runs one prompt over a grid of models / temperatures / seeds, ``wm.batch`` runs
many prompts; both return one DataFrame row per run.

How it runs: every cell is checked first (a bad parameter fails before anything is sent), then all cells go out
through ``achat`` at once, bounded by an ``asyncio.Semaphore`` (default 8; the client keeps 64 connections).
Each cell keeps the core's retry policy; a cell that still fails becomes a row with its ``error`` and whatever
Response it had. Results are stored as each cell ends, so an interrupt (Ctrl-C, the kernel's stop button) returns
the finished rows with a warning instead of losing them, and the runs it stopped while they were answering as rows
of their partial Responses (``complete`` False, no error, the Response's status ``stopped``; ``attrs["stopped"]``).

Where it runs: ``compare``/``batch`` are synchronous and run the sweep on the client's private event-loop thread
(``client.LOOP``), so they work in a notebook cell, whose loop is already running, without nest_asyncio.
``acompare``/``abatch`` are the same for ``await``. The progress bar is ``tqdm.auto`` (a widget in notebooks,
text in terminals), created in the caller's thread so it lands in the caller's cell.

With a ``schema`` (any form ``wm.chat`` takes) every answer is read as data: one column per top-level field (named
``<field>_field`` where that name is taken), ``<field>_prob`` with logprobs (the probability of the field's tokens
together, ``fieldprobs``), and ``parsed`` (the object of the schema's kind). An answer that does not fit is a row
with the SchemaError in ``error`` and no field values, never the end of the sweep.

Divergence: runs of the same prompt are compared token by token; ``diverge_token`` is the first token position
where they stop agreeing (needs ``logprobs=True``, which carries the token boundaries), ``diverge_char`` the first
character. Both are missing when the runs agree throughout or there is only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import budget, client
from ..core.errors import InvalidParameterError, WcodeError, tasks_warn_here, tasks_warn_reset, warn_user
from ..core.params import CHAT_KEYWORDS
from ..core.response import Response
from ..core.schema import Schema, check_call, parse_json, to_schema
from ..core.sendable import check_headers
from ..core.served import OCCURRENCE
from . import recorder, rows
from .rows import response_row

if TYPE_CHECKING:
    import pandas as pd

MAX_CONCURRENCY = 64  # the client's connection pool: more would only queue inside httpx
# Runs in one sweep. Axes multiply, so a slip (range(1000) where range(10) was meant, on two axes) asks for
# millions of cells, which are built in memory before the first request; 10,000 is already hours of requests at
# the default concurrency of 8 (and a bill on wcode.net), and every run keeps its Response in the table.
MAX_RUNS = 10_000
# achat's own keywords (params.CHAT_KEYWORDS, the one declaration chat and achat take theirs from) but model,
# which compare sweeps and batch sends per cell with the request parameters; everything else in **fixed is a
# request parameter checked against params.PARAMS
CALL_KEYWORDS = frozenset(CHAT_KEYWORDS) - {"model"}
RESULT_COLUMNS = (
    *rows.ANSWER_COLUMNS,
    "cost",
    *rows.TIMING_COLUMNS,
    "complete",
    "error",
    "diverge_token",
    "diverge_char",
    "response",
)
Prompt = str | list[dict[str, Any]]


@dataclass
class Cell:
    """One run of the sweep: what to send, and the grid values shown as columns."""

    index: int
    prompt: Prompt
    group: Any  # runs in the same group share the prompt: divergence is measured within it
    labels: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    response: Response | None
    error: BaseException | None
    wall_s: float


# -- checking the input -----------------------------------------------------------------------------------------
def _bad(param: str, value: Any, allowed: str) -> InvalidParameterError:
    return InvalidParameterError(f"{param}={value!r} is not allowed: {allowed}.", param=param, value=value)


def _check_count(name: str, value: Any, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        raise _bad(name, value, f"give an integer from 1 to {high}" if high else "give an integer of at least 1")


@dataclass(frozen=True)
class SweepArgs:
    """What compare and batch both take, checked: runs per cell (``n``), runs at a time (``concurrency``), and the
    fixed settings split into achat keywords (``call``) and request parameters (``params``)."""

    n: int
    concurrency: int
    call: dict[str, Any]
    params: dict[str, Any]


def _check_runs(n: Any, concurrency: Any) -> None:
    """Runs per cell (at least 1) and how many at a time (1 to MAX_CONCURRENCY, the client's connection pool)."""
    _check_count("n", n, None)
    _check_count("concurrency", concurrency, MAX_CONCURRENCY)


def _axis(name: str, values: Any) -> list[Any] | None:
    """A grid axis as a list: None stays None (not swept), a scalar is one value, an empty list is an error."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        return [values]
    out = _bounded(name, values)
    if not out:
        raise _bad(name, values, "give at least one value (or leave it out)")
    return out


def _bounded(name: str, values: Iterable[Any]) -> list[Any]:
    """``list(values)``, refused before it is built when it would hold more than MAX_RUNS values (a huge range
    or an endless generator would exhaust memory first)."""
    if isinstance(values, Sized):
        many, out = f"{len(values):,}", None if len(values) > MAX_RUNS else list(values)
    else:
        many, out = f"more than {MAX_RUNS:,}", list(itertools.islice(values, MAX_RUNS + 1))
    if out is None or len(out) > MAX_RUNS:
        raise InvalidParameterError(
            f"{name} has {many} values, more than a sweep may run ({MAX_RUNS:,} runs): sweep fewer values, or "
            "split the sweep into several calls.",
            param=name,
        )
    return out


def _check_total(what: str, sizes: Mapping[str, int]) -> None:
    """Refuse a sweep of more than MAX_RUNS runs before its cells are built, saying how the count came about."""
    total = math.prod(sizes.values())
    if total > MAX_RUNS:
        factors = " x ".join(f"{size:,} {name}" for name, size in sizes.items())
        raise InvalidParameterError(
            f"{what} would make {total:,} runs ({factors}), more than the {MAX_RUNS:,} one sweep may run: sweep "
            "fewer values or fewer repeats (n), or split it into several calls.",
            param=what,
            value=total,
        )


def _split(fixed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(achat keywords, request parameters) from the caller's fixed settings."""
    call = {k: v for k, v in fixed.items() if k in CALL_KEYWORDS}
    params = {k: v for k, v in fixed.items() if k not in CALL_KEYWORDS}
    return call, params


def _validate(cells: list[Cell], call: dict[str, Any]) -> list[dict[str, Any]]:
    """Build every distinct request body once, so a bad value raises before the first request leaves; returns each
    cell's body, for the cost check. A schema is converted here, once: every cell shares the result."""
    check_headers(call.get("headers"))
    if call.get("cache") is not None:
        client.SETTINGS["cache"].check(call["cache"], "cache")
    if call.get("schema") is not None:
        call["schema"] = to_schema(call["schema"])
        for cell in cells:
            check_call(call["schema"], cell.params)
    seen: dict[str, dict[str, Any]] = {}
    bodies = []
    for cell in cells:
        key = repr((cell.prompt, sorted(cell.params.items(), key=lambda kv: kv[0])))  # batch: prompts differ
        if key in seen:
            bodies.append(seen[key])
            continue
        params = dict(cell.params)
        model = params.pop("model", None)
        seen[key] = client.build_request(
            cell.prompt if isinstance(cell.prompt, str) else list(cell.prompt),
            model=model,
            system=call.get("system"),
            stream=call.get("stream", True),
            extra_body=call.get("extra_body"),
            call_params=params,
        )
        bodies.append(seen[key])
    return bodies


def _cost_check(
    bodies: list[dict[str, Any]], call: Mapping[str, Any], what: str
) -> contextlib.AbstractContextManager[None]:
    """Before anything is sent: the worst case on one line (when a run is priced), and the session's cap checked
    once for the whole sweep (asked in a notebook, else BudgetError). Returns the context to run the sweep in:
    its runs were checked together, so they do not ask one by one. With a replay or the cache on, some runs may
    cost nothing: then each run is checked as it is sent instead (one over the cap becomes a row with its error)."""
    est = budget.estimate(bodies)
    cache = call.get("cache")
    served = recorder.replaying() is not None or (client.SESSION.cache if cache is None else bool(cache))
    if est.priced:
        print(est.line() + (" Runs answered from a recording or the cache cost nothing." if served else ""))
    if served:
        return contextlib.nullcontext()
    budget.check(est, f"this {what} ({len(bodies)} runs)")
    return budget.covered()


# -- running ----------------------------------------------------------------------------------------------------
def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar; in a notebook its widget is shown through a display handle of ours (see ``_close``)."""
    from tqdm.auto import tqdm

    notebook = any(cls.__name__ == "tqdm_notebook" for cls in tqdm.__mro__)
    if not (notebook and enabled):
        return tqdm(total=total, desc=desc, unit="run", disable=not enabled, leave=True)
    from IPython.display import display

    bar = tqdm(total=total, desc=desc, unit="run", leave=True, display=False)
    bar.wcode_handle = display(bar.container, display_id=True)
    bar.displayed = True
    return bar


def _close(bar: Any) -> None:
    """Close the bar. A notebook saves a widget's text/plain fallback as it was when first displayed (0/N), and
    without the widget state that is all a saved notebook shows; re-sending the widget through its display
    handle after the last update makes the fallback the final count (N/N)."""
    bar.close()
    handle = getattr(bar, "wcode_handle", None)
    if handle is not None:
        handle.update(bar.container)


Watch = Callable[[int, Any], None]  # (cell index, stream event): a live view of each run (notebook.compareview)


async def _run(
    cells: list[Cell],
    call: Mapping[str, Any],
    concurrency: int,
    bar: Any,
    outcomes: dict[int, Outcome],
    watch: Watch | None = None,
) -> None:
    """Run every cell, at most ``concurrency`` at a time, storing each outcome as soon as it ends; ``watch``
    sees every event of every run with its cell's index."""
    gate = asyncio.Semaphore(concurrency)
    user_on_event = call.get("on_event")
    kwargs = {k: v for k, v in call.items() if k != "on_event"}
    failures = 0
    # the n-th run of an identical request is its n-th repeat: cache=True serves it the n-th stored answer
    repeats: dict[str, int] = {}
    occurrence: dict[int, int] = {}
    for cell in cells:
        same = repr((cell.prompt, sorted(cell.params.items(), key=lambda kv: kv[0])))
        occurrence[cell.index] = repeats.get(same, 0)
        repeats[same] = occurrence[cell.index] + 1

    async def one(cell: Cell) -> None:
        nonlocal failures
        OCCURRENCE.set(occurrence[cell.index])  # this task's own context: no other run sees it
        async with gate:
            started: list[Response] = []

            def on_event(ev: Any) -> None:
                if ev.kind == "start":
                    started.append(ev.value)
                if user_on_event is not None:
                    user_on_event(ev)
                if watch is not None:
                    watch(cell.index, ev)

            t0 = time.perf_counter()
            try:
                response = await client.achat(cell.prompt, on_event=on_event, **kwargs, **cell.params)
                outcomes[cell.index] = Outcome(response, None, time.perf_counter() - t0)
            except Exception as e:  # a failed cell is a row, never the end of the sweep
                partial = getattr(e, "partial", None) or (started[-1] if started else None)
                outcomes[cell.index] = Outcome(partial, e, time.perf_counter() - t0)
                failures += 1
                bar.set_postfix_str(f"{failures} failed", refresh=False)
            except asyncio.CancelledError:  # the sweep was stopped: a run that had begun to answer keeps its row,
                # its Response marked stopped by the client (complete False, no error), as CompareView shows it
                partial = started[-1] if started else None
                if partial is not None and (partial.text or partial.reasoning):
                    outcomes[cell.index] = Outcome(partial, None, time.perf_counter() - t0)
                raise
            bar.update(1)

    here = tasks_warn_here()  # the cells' warnings point at the user's line
    tasks = [asyncio.ensure_future(one(cell)) for cell in cells]
    tasks_warn_reset(here)
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # let stopped calls mark their Responses
        raise


def _run_sync(cells: list[Cell], call: Mapping[str, Any], concurrency: int, desc: str, progress: bool) -> dict:
    """Run on the client's loop thread; on KeyboardInterrupt keep what finished and what the stop cut short."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and running is client.LOOP.loop():
        raise RuntimeError(f"wm.{desc}() was called from inside wcode-magic's own loop; use `await wm.a{desc}(...)`.")
    outcomes: dict[int, Outcome] = {}
    bar = _progress(len(cells), desc, progress)
    interrupted = False
    try:
        client.LOOP.run(_run(cells, call, concurrency, bar, outcomes))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _close(bar)
    return {"outcomes": outcomes, "interrupted": interrupted}


async def _run_async(cells: list[Cell], call: Mapping[str, Any], concurrency: int, desc: str, progress: bool) -> dict:
    """Run on the caller's loop; a cancellation (the notebook's stop button) returns what finished."""
    outcomes: dict[int, Outcome] = {}
    bar = _progress(len(cells), desc, progress)
    interrupted = False
    try:
        await _run(cells, call, concurrency, bar, outcomes)
    except asyncio.CancelledError:
        interrupted = True
        task = asyncio.current_task()
        if task is not None and hasattr(task, "uncancel"):
            task.uncancel()  # the sweep handled the cancellation by returning its finished rows
    finally:
        _close(bar)
    return {"outcomes": outcomes, "interrupted": interrupted}


# -- the table --------------------------------------------------------------------------------------------------
def _common_prefix(seqs: Sequence[Sequence[Any]]) -> int | None:
    """Length of the prefix all sequences share, or None when they are all identical (no divergence)."""
    if len(seqs) < 2 or all(s == seqs[0] for s in seqs[1:]):
        return None
    n = 0
    for items in zip(*seqs, strict=False):
        if any(x != items[0] for x in items[1:]):
            break
        n += 1
    return n


def _divergence(cells: list[Cell], outcomes: dict[int, Outcome]) -> dict[int, tuple[int | None, int | None]]:
    """(diverge_token, diverge_char) per cell index, over the complete runs of each prompt group."""
    groups: dict[Any, list[Response]] = {}
    members: dict[Any, list[int]] = {}
    for cell in cells:
        out = outcomes.get(cell.index)
        if out is None or out.error is not None or out.response is None or not out.response.complete:
            continue
        groups.setdefault(cell.group, []).append(out.response)
        members.setdefault(cell.group, []).append(cell.index)
    result: dict[int, tuple[int | None, int | None]] = {}
    for group, responses in groups.items():
        token_lists = [list(cols.tokens) if (cols := r.logprob_columns("content")) else [] for r in responses]
        by_token = _common_prefix(token_lists) if all(token_lists) else None
        by_char = _common_prefix([r.text for r in responses])
        for index in members[group]:
            result[index] = (by_token, by_char)
    return result


def _error_text(e: BaseException) -> str:
    message = e.message if isinstance(e, WcodeError) else str(e)
    return f"{type(e).__name__}: {message}"


def _label_column(name: str) -> str:
    """The column of a grid axis; one named like a result column (``reasoning``) gets ``_param``, so the swept
    setting and the result (the thinking text) both keep their own column."""
    return f"{name}_param" if name in RESULT_COLUMNS else name


# what a run that never got a Response shows; its other Response columns are missing
NO_RESPONSE = {"text": "", "reasoning": ""}


def run_row(out: Outcome, diverge: tuple[int | None, int | None]) -> dict[str, Any]:
    """One run's RESULT_COLUMNS: the Response's own values as ``rows.response_row`` gives them (the history and
    ``wm.frame`` rows), then what only a sweep knows: the wall time when the Response has no latency, whether the
    run ended well (complete and no error), the error, the divergence and the Response itself."""
    r = out.response
    shared = response_row(r, when=0.0) if r is not None else NO_RESPONSE
    row = {name: shared.get(name) for name in RESULT_COLUMNS}
    row.update(
        latency_s=out.wall_s if row["latency_s"] is None else row["latency_s"],
        complete=bool(r is not None and r.complete and out.error is None),
        error=None if out.error is None else _error_text(out.error),
        diverge_token=diverge[0],
        diverge_char=diverge[1],
        response=r,
    )
    return row


def _field_column(name: str, taken: Iterable[str]) -> str:
    """A schema field's column; one named like another column (``text``, ``error``, a grid axis) gets ``_field``."""
    return f"{name}_field" if name in taken else name


def schema_cells(response: Response | None, schema: Schema, error: str | None) -> tuple[dict[str, Any], str | None]:
    """(field -> value, the parse error) of one run with a schema: the answer's top-level JSON values when it fits
    (plain JSON values, good in a column), else no values and the SchemaError as the row's error, if it had none."""
    if response is None or error is not None:
        return {}, error
    failure = response.parse_error
    if failure is not None:
        return {}, _error_text(failure)
    value = parse_json(response.text)
    return {name: value.get(name) for name in schema.fields}, None


def _field_probs(response: Response | None, schema: Schema) -> dict[str, float]:
    """Each top-level field's probability (fieldprobs.top_level_probs), or nothing without answer logprobs."""
    from .fieldprobs import row_probs

    if response is None or response.logprob_columns("content") is None or response.parse_error is not None:
        return {}
    return row_probs(response, schema.fields)


def _table(cells: list[Cell], run: dict, label_columns: list[str], schema: Schema | None = None) -> pd.DataFrame:
    import pandas as pd

    outcomes: dict[int, Outcome] = run["outcomes"]
    diverge = _divergence(cells, outcomes)
    data: dict[str, list[Any]] = {_label_column(name): [] for name in label_columns}
    fields = list(schema.fields) if schema is not None else []
    taken = {*data, *RESULT_COLUMNS, "parsed"}
    field_columns = {f: _field_column(f, taken) for f in fields}
    prob_columns = {f: _field_column(f"{f}_prob", taken) for f in fields}
    with_probs = schema is not None and any(
        o.response is not None and o.response.request.get("logprobs") for o in outcomes.values()
    )
    data.update({field_columns[f]: [] for f in fields})
    if with_probs:
        data.update({prob_columns[f]: [] for f in fields})
    data.update({name: [] for name in RESULT_COLUMNS})
    if schema is not None:
        data["parsed"] = []
    for cell in cells:
        out = outcomes.get(cell.index)
        if out is None:  # interrupted before it finished
            continue
        for name in label_columns:
            data[_label_column(name)].append(cell.labels.get(name))
        row = run_row(out, diverge.get(cell.index, (None, None)))
        if schema is not None:
            values, row["error"] = schema_cells(out.response, schema, row["error"])
            probs = _field_probs(out.response, schema) if with_probs and values else {}
            for f in fields:
                data[field_columns[f]].append(values.get(f))
                if with_probs:
                    data[prob_columns[f]].append(probs.get(f, math.nan))
            data["parsed"].append(out.response.parsed if values and out.response is not None else None)
        for name, value in row.items():
            data[name].append(value)
    df = pd.DataFrame(data)
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens", "diverge_token"):
        df[name] = df[name].astype("Int64")
    df["diverge_char"] = df["diverge_char"].astype("Int64")
    stopped = sum(out.error is None and out.response is not None and out.response.stopped for out in outcomes.values())
    failed = int(df["error"].notna().sum())
    finished = len(df) - stopped
    df.attrs.update(total=len(cells), finished=finished, stopped=stopped, failed=failed, interrupted=run["interrupted"])
    if run["interrupted"]:
        also = f", and the {stopped} stopped while answering, with what they had received" if stopped else ""
        warn_user(f"Interrupted: returning the {finished} of {len(cells)} runs that finished{also}.")
    return df


# -- compare ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareArgs(SweepArgs):
    """compare's arguments, checked: the prompt and the grid's axes (``model`` first, ``[None]`` for the
    session's model, then temperature, seed and the ``grid`` axes that are swept)."""

    prompt: Prompt
    axes: dict[str, list[Any]]


def check_compare(
    prompt: Any,
    models: Any = None,
    temperature: Any = None,
    seed: Any = None,
    n: Any = 1,
    concurrency: Any = 8,
    *,
    grid: Any = None,
    fixed: Mapping[str, Any] | None = None,
) -> CompareArgs:
    """Every check of compare's own arguments, in one place and pure (no session, nothing sent): an
    InvalidParameterError names the parameter, its value and what is allowed. The request parameters' values are
    checked next, by ``_validate``, against the session and the model, still before anything is sent."""
    if not isinstance(prompt, (str, list)) or not prompt:
        raise _bad("prompt", prompt, "give a prompt string or a list of messages")
    _check_runs(n, concurrency)
    if grid is not None and not isinstance(grid, Mapping):
        raise _bad("grid", grid, "give a dict of parameter name -> values to sweep, or None")
    fixed = dict(fixed or {})
    model = fixed.pop("model", None)
    if models is not None and model is not None:
        raise _bad("model", model, "give either model= or models=, not both")
    axes = {"model": _axis("models", models if models is not None else model) or [None]}
    for name, values in (("temperature", temperature), ("seed", seed), *(grid or {}).items()):
        if name in axes or name in CALL_KEYWORDS:
            raise _bad("grid", name, "sweep request parameters only, each once")
        listed = _axis(name, values)
        if listed is not None:
            if name in fixed:
                raise _bad(name, fixed[name], f"{name} is already swept; do not also fix it")
            axes[name] = listed
    _check_total("compare", {**{name: len(values) for name, values in axes.items()}, "n": n})
    call, params = _split(fixed)
    return CompareArgs(n, concurrency, call, params, prompt, axes)


def _compare_cells(args: CompareArgs) -> tuple[list[Cell], list[str]]:
    """One cell per combination of the axes and run; a missing model is shown as the session's."""
    cells: list[Cell] = []
    names = list(args.axes)
    for combo in itertools.product(*args.axes.values()):
        for run in range(args.n):
            labels = dict(zip(names, combo, strict=True))
            cell_params = {**args.params, **{k: v for k, v in labels.items() if v is not None}}
            if labels["model"] is None:
                labels["model"] = client.SESSION.resolve_model(None)
            labels["run"] = run
            cells.append(Cell(len(cells), args.prompt, 0, labels, cell_params))
    return cells, [*names, "run"]


@dataclass(frozen=True)
class ComparePlan:
    """A compare checked and laid out, nothing sent: for views that run it themselves and show each run as it
    streams (``notebook.compareview``) and still return the table ``compare`` returns."""

    cells: list[Cell]
    labels: list[str]  # the label columns: the grid's axes, then ``run``
    call: dict[str, Any]  # achat keywords shared by every run (a schema already converted)
    concurrency: int
    bodies: list[dict[str, Any]]  # each cell's request body, for the cost check


def plan_compare(
    prompt: Prompt,
    models: Any = None,
    temperature: Any = None,
    seed: Any = None,
    n: Any = 1,
    concurrency: Any = 8,
    *,
    grid: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> ComparePlan:
    """compare's arguments checked (``check_compare``), its cells built and every request validated: a bad value
    raises InvalidParameterError here, before anything is sent."""
    args = check_compare(prompt, models, temperature, seed, n, concurrency, grid=grid, fixed=fixed)
    cells, labels = _compare_cells(args)
    bodies = _validate(cells, args.call)
    return ComparePlan(cells, labels, args.call, args.concurrency, bodies)


def cost_check(plan: ComparePlan) -> contextlib.AbstractContextManager[None]:
    """The worst case of a planned compare shown and the session's cap checked, before anything is sent; run the
    plan inside the returned context (see ``_cost_check``)."""
    return _cost_check(plan.bodies, plan.call, "compare")


async def run_plan(plan: ComparePlan, outcomes: dict[int, Outcome], watch: Watch | None = None) -> None:
    """Run a planned compare on the caller's loop without a progress bar (the caller shows progress), storing
    each run's Outcome in ``outcomes`` as it ends. Cancelled, it cancels every run (each marks its Response
    stopped) and raises CancelledError; the runs that ended are in ``outcomes``."""
    await _run(plan.cells, plan.call, plan.concurrency, _progress(len(plan.cells), "compare", False), outcomes, watch)


def plan_table(plan: ComparePlan, outcomes: dict[int, Outcome], interrupted: bool = False) -> pd.DataFrame:
    """The table ``compare`` returns for these outcomes (one row per cell that has one, in grid order);
    ``interrupted``: say so, with how many finished."""
    run = {"outcomes": outcomes, "interrupted": interrupted}
    return _table(plan.cells, run, plan.labels, plan.call.get("schema"))


def compare(
    prompt: Prompt,
    models: Any = None,
    temperature: Any = None,
    seed: Any = None,
    n: int = 1,
    concurrency: int = 8,
    *,
    grid: Mapping[str, Any] | None = None,
    progress: bool = True,
    **fixed: Any,
) -> pd.DataFrame:
    """Run ``prompt`` over every combination of ``models`` x ``temperature`` x ``seed`` (x ``grid`` axes), ``n``
    times each, ``concurrency`` at a time; one row per run (see the module docstring for the columns).

    Each axis takes one value or a list; ``**fixed`` are the same for every run: request parameters
    (``max_tokens=100``, ``logprobs=True``) and ``achat`` options (``system``, ``base_url``, ``headers``...).
    A ``grid`` axis named like a result column (``reasoning``) is shown as ``reasoning_param``.
    """
    plan = plan_compare(prompt, models, temperature, seed, n, concurrency, grid=grid, **fixed)
    with cost_check(plan):
        run = _run_sync(plan.cells, plan.call, plan.concurrency, "compare", progress)
    return plan_table(plan, run["outcomes"], run["interrupted"])


async def acompare(
    prompt: Prompt,
    models: Any = None,
    temperature: Any = None,
    seed: Any = None,
    n: int = 1,
    concurrency: int = 8,
    *,
    grid: Mapping[str, Any] | None = None,
    progress: bool = True,
    **fixed: Any,
) -> pd.DataFrame:
    """``compare`` for ``await`` (a notebook cell with top-level await keeps its Stop button responsive)."""
    plan = plan_compare(prompt, models, temperature, seed, n, concurrency, grid=grid, **fixed)
    with cost_check(plan):
        run = await _run_async(plan.cells, plan.call, plan.concurrency, "compare", progress)
    return plan_table(plan, run["outcomes"], run["interrupted"])


# -- batch ------------------------------------------------------------------------------------------------------
def _items(prompts: Any, column: str | None) -> tuple[list[tuple[Any, Prompt]], bool]:
    """(label, prompt) pairs from a list, a Series or a DataFrame column; and whether labels are a pandas index."""
    if isinstance(prompts, (str, bytes)):
        raise _bad("prompts", prompts, "give a list, Series or DataFrame of prompts (for one prompt use wm.chat)")
    if hasattr(prompts, "columns"):  # a DataFrame
        if column is None:
            if len(prompts.columns) != 1:
                raise _bad("column", column, f"name the prompt column, one of {list(prompts.columns)}")
            column = prompts.columns[0]
        if column not in prompts.columns:
            raise _bad("column", column, f"one of {list(prompts.columns)}")
        prompts = prompts[column]
    if hasattr(prompts, "items") and hasattr(prompts, "index"):  # a Series
        pairs, indexed = list(prompts.items()), True
    elif isinstance(prompts, Iterable):
        pairs, indexed = list(enumerate(_bounded("prompts", prompts))), False
    else:
        raise _bad("prompts", prompts, "give a list, Series or DataFrame of prompts")
    if not pairs:
        raise _bad("prompts", prompts, "give at least one prompt")
    for label, p in pairs:
        if not isinstance(p, (str, list)) or not p:
            raise _bad(f"prompts[{label!r}]", p, "each prompt is a non-empty string or a list of messages")
    return pairs, indexed


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """What the ``prompt`` column shows for a message list: its last user turn."""
    user = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return user[-1] if user and isinstance(user[-1], str) else repr(user[-1] if user else messages[-1])


@dataclass(frozen=True)
class BatchArgs(SweepArgs):
    """batch's arguments, checked: the (label, prompt) pairs and whether the labels are the input's pandas index."""

    pairs: list[tuple[Any, Prompt]]
    indexed: bool

    @property
    def by_item(self) -> bool:
        """Whether the result is indexed like the input: a Series or DataFrame, one run per prompt (joinable)."""
        return self.indexed and self.n == 1


def check_batch(
    prompts: Any, n: Any = 1, concurrency: Any = 8, *, column: Any = None, fixed: Mapping[str, Any] | None = None
) -> BatchArgs:
    """Every check of batch's own arguments, in one place and pure, as ``check_compare`` for compare."""
    _check_runs(n, concurrency)
    pairs, indexed = _items(prompts, column)
    _check_total("batch", {"prompts": len(pairs), "n": n})
    call, params = _split(fixed or {})
    return BatchArgs(n, concurrency, call, params, pairs, indexed)


def _batch_cells(args: BatchArgs) -> tuple[list[Cell], list[str]]:
    """One cell per prompt and run; runs of one prompt form a group (for the divergence)."""
    cells: list[Cell] = []
    for position, (label, prompt) in enumerate(args.pairs):
        shown = prompt if isinstance(prompt, str) else _last_user_text(prompt)
        for run in range(args.n):
            labels = {"item": label, "prompt": shown, "run": run}
            cells.append(Cell(len(cells), prompt, position, labels, dict(args.params)))
    return cells, ["item", "prompt", "run"]


def _indexed(df: pd.DataFrame, by_item: bool) -> pd.DataFrame:
    """The result indexed by ``item`` (``BatchArgs.by_item``), or as it is."""
    if by_item:
        df = df.set_index("item")
        df.index.name = None
    return df


def batch(
    prompts: Any,
    concurrency: int = 8,
    *,
    n: int = 1,
    column: str | None = None,
    progress: bool = True,
    **params: Any,
) -> pd.DataFrame:
    """Run every prompt (a list, a Series, or ``column`` of a DataFrame), ``n`` times each, ``concurrency`` at a
    time, with the same ``**params``; one row per run, in input order (see the module docstring)."""
    args = check_batch(prompts, n, concurrency, column=column, fixed=params)
    cells, labels = _batch_cells(args)
    with _cost_check(_validate(cells, args.call), args.call, "batch"):
        run = _run_sync(cells, args.call, concurrency, "batch", progress)
    return _indexed(_table(cells, run, labels, args.call.get("schema")), args.by_item)


async def abatch(
    prompts: Any,
    concurrency: int = 8,
    *,
    n: int = 1,
    column: str | None = None,
    progress: bool = True,
    **params: Any,
) -> pd.DataFrame:
    """``batch`` for ``await``."""
    args = check_batch(prompts, n, concurrency, column=column, fixed=params)
    cells, labels = _batch_cells(args)
    with _cost_check(_validate(cells, args.call), args.call, "batch"):
        run = await _run_async(cells, args.call, concurrency, "batch", progress)
    return _indexed(_table(cells, run, labels, args.call.get("schema")), args.by_item)
