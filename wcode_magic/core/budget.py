"""The cost check before spending: a request's worst-case price, and the session's cap (``budget``).

Why a worst case and not a guess: what a call will cost is known only after it ends (``Response.cost``), and the
trial that asked for this check sent a 212,574-token prompt without a word. So before anything leaves, each
request is priced as if it used everything it may: its prompt tokens at the input price plus its ``max_tokens``
at the output price. A thinking model's reasoning is billed as output and ``max_tokens`` bounds reasoning and
answer together, so it is covered. Without ``max_tokens`` the model pages' own bound applies: "its maximum equals
the context length minus the prompt length" (params.py, seeds/*).

Prompt tokens are counted without a tokenizer (none is downloaded): ``text_tokens`` reads ASCII at 3 characters
per token and any other character as 1 token. These models' BPE tokenizers average about 4 ASCII characters per
English token (code, digits and punctuation fewer), and 0.6-1 token per Chinese character, so both rates lean high:
the estimate is meant not to be below what the server will count for ordinary text.

A model without a price (not in the catalog: any OpenAI-compatible server) has an unknown cost: the estimate says
so and the cap never blocks it. The bundled local models are free. Answers served without the network (a replay,
the cache) are never checked: the client asks only for what it is about to send.

The cap: ``spent`` is the session's recorded cost (the usage totals, through ``hooks.provided("spent")``) plus
the worst cases of calls still running (``reserved``), so calls sent at once cannot each see the whole rest. A
call whose worst case is more than what is left is put to the user (``hooks.may_spend``: the notebook layer asks in
the running cell); with no answer possible (a script, a background task, a notebook run without input) it is
refused with ``BudgetError`` before anything is sent. A sweep is checked once, summed (``check`` then
``covered()``), so its runs do not ask again one by one.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import catalog, hooks
from .errors import BudgetError, warn_user
from .settings import SESSION

ASCII_CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4  # role and separators each chat template adds per message

_reserved = [0.0]
_lock = threading.Lock()
_covered: contextvars.ContextVar[bool] = contextvars.ContextVar("wcode_budget_covered", default=False)
_warned: set[tuple[str, int]] = set()  # (conversation, threshold) already said: once per crossing


def text_tokens(text: str) -> int:
    """Tokens ``text`` may take: ASCII at 3 characters a token, any other character (CJK above all) 1 token."""
    wide = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))  # C speed: prompts get long
    return wide + math.ceil((len(text) - wide) / ASCII_CHARS_PER_TOKEN)


def _part_tokens(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, list) and all(isinstance(p, Mapping) and p.get("type") == "text" for p in value):
        return sum(text_tokens(str(p.get("text", ""))) for p in value)
    return text_tokens(json.dumps(value, ensure_ascii=False, default=str))


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """The prompt a request body sends, in tokens: every message's content (and tool calls, reasoning sent back),
    the tools and the response format, plus each message's template overhead."""
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        total += MESSAGE_OVERHEAD
        for part in ("content", "reasoning", "reasoning_content", "tool_calls", "name"):
            total += _part_tokens(message.get(part))
    for part in ("tools", "response_format"):
        total += _part_tokens(body.get(part))
    return total


@dataclass(frozen=True)
class RunCost:
    """One request's worst case: its model, prompt tokens, the output it may produce, and the prices per 1K."""

    model: str
    prompt_tokens: int
    max_tokens: int | None  # None: unknown (a model not in the catalog, without max_tokens)
    price_in: float | None
    price_out: float | None

    @property
    def cost(self) -> float | None:
        """CNY at most; None when the price (or the output bound) is unknown."""
        if self.price_in is None or self.price_out is None or self.max_tokens is None:
            return None
        return (self.prompt_tokens * self.price_in + self.max_tokens * self.price_out) / 1000

    @property
    def priced(self) -> bool:
        return bool(self.cost)


def run_cost(body: Mapping[str, Any]) -> RunCost:
    """The worst case of one request body (as ``build_request`` makes it)."""
    model = str(body.get("model", ""))
    entry = catalog.lookup(model)
    tokens = prompt_tokens(body)
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    if not isinstance(limit, int) or isinstance(limit, bool):
        limit = max(entry.context - tokens, 1) if entry is not None else None
    if entry is None:
        return RunCost(model, tokens, limit, None, None)
    return RunCost(entry.id, tokens, limit, entry.price_in, entry.price_out)


@dataclass(frozen=True)
class Estimate:
    """The worst case of requests about to be sent: per run, and summed over those with a known price."""

    runs: tuple[RunCost, ...]

    @property
    def total(self) -> float:
        return sum(r.cost or 0.0 for r in self.runs)

    @property
    def priced(self) -> bool:
        """Whether any run costs money (free local models and unknown prices do not)."""
        return any(r.priced for r in self.runs)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Models whose price is unknown (not in the catalog): their cost is not in ``total``."""
        return tuple(dict.fromkeys(r.model for r in self.runs if r.cost is None))

    @property
    def prompt_tokens(self) -> int:
        return max((r.prompt_tokens for r in self.runs), default=0)

    def line(self) -> str:
        """One line: the summed worst case, each priced model's per-run worst case, unknown prices, the budget."""
        n = len(self.runs)
        per_model: dict[str, list[float]] = {}
        for r in self.runs:
            if r.priced:
                per_model.setdefault(r.model, []).append(r.cost or 0.0)
        parts = [f"{model} up to {yuan(max(costs))} per run × {len(costs)}" for model, costs in per_model.items()]
        text = f"Worst case: {n} run{'s' if n != 1 else ''}, up to {yuan(self.total)} in all"
        text += f" ({'; '.join(parts)})" if parts else " (free)"
        if self.unknown:
            text += f"; price unknown, not counted: {', '.join(self.unknown)}"
        threshold = SESSION.warn_prompt_tokens
        if threshold is not None and self.prompt_tokens > threshold:
            text += f"; the longest prompt is about {self.prompt_tokens:,} tokens"
        cap = SESSION.budget
        if cap is not None:
            text += f". Budget: {yuan(left() or 0.0)} left of {yuan(cap)}"
        return text + "."


def estimate(bodies: Iterable[Mapping[str, Any]]) -> Estimate:
    """The worst case of every request body given (one per run)."""
    return Estimate(tuple(run_cost(b) for b in bodies))


def yuan(amount: float) -> str:
    """¥ with enough digits that a tenth of a fen still shows (¥0.0042), and no trailing zeros."""
    if amount == 0:
        return "¥0"
    digits = max(2, 2 - math.floor(math.log10(abs(amount))) + 1) if abs(amount) < 1 else 2
    return f"¥{amount:.{digits}f}".rstrip("0").rstrip(".")


# -- the session's cap -------------------------------------------------------------------------------------
def spent() -> float:
    """CNY this session has been charged, as recorded (served answers cost nothing)."""
    return float(hooks.provided("spent")())


def reserved() -> float:
    """The worst cases of calls sent and not yet ended."""
    with _lock:
        return _reserved[0]


def left() -> float | None:
    """What is left of the cap (never below 0), or None with no cap."""
    cap = SESSION.budget
    return None if cap is None else max(cap - spent() - reserved(), 0.0)


def over(est: Estimate, what: str = "this call") -> str | None:
    """Why ``est`` needs the user's yes (its worst case could pass what is left), or None when it fits."""
    remaining = left()
    if remaining is None or est.total <= remaining:
        return None
    cap = SESSION.budget
    assert cap is not None
    bigger = _round_up(cap + est.total - remaining)
    return (
        f"The worst case of {what} is {yuan(est.total)} but only {yuan(remaining)} of the session's "
        f"{yuan(cap)} budget is left ({yuan(spent())} spent"
        + (f", {yuan(reserved())} held by calls still running" if reserved() else "")
        + f"). Raise the cap with wm.configure(budget={bigger}) or %wcode budget {bigger}, lower max_tokens, "
        "or turn the cap off with %wcode budget off."
    )


def _round_up(amount: float) -> str:
    """A cap that covers ``amount``, as a user would type it."""
    for step in (0.01, 0.1, 1, 10, 100):
        if amount < step * 100:
            value = math.ceil(amount / step) * step
            return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(math.ceil(amount))


def check(est: Estimate, what: str = "this call", note: str = "") -> Estimate:
    """``est`` when it fits what is left, or when the user says yes; else BudgetError, before anything is sent.

    ``note`` comes first in the question (the long-prompt warning, when both apply). Inside ``covered()`` (a sweep
    already checked as a whole) nothing is asked."""
    if _covered.get():
        return est
    reason = over(est, what)
    if reason is None:
        return est
    answer = hooks.may_spend(f"{note}{reason} Send anyway?")
    if answer:
        return est
    if answer is None:
        raise BudgetError(f"Not sent: {note}{reason} (No one could approve it here.)")
    raise BudgetError(f"Not sent: you declined. {note}{reason}")


@contextlib.contextmanager
def covered() -> Iterator[None]:
    """Calls made inside (in this context, and tasks it starts) were checked as a whole: they do not ask again."""
    token = _covered.set(True)
    try:
        yield
    finally:
        _covered.reset(token)


# -- what the client does for each call it is about to send ------------------------------------------------
def before_call(body: Mapping[str, Any]) -> float:
    """The client's check of one request about to be sent: the long-prompt warning, then the cap. Returns the
    worst case now held for it (pass it to ``release`` when the call ends); raises BudgetError instead."""
    est = estimate([body])
    run = est.runs[0]
    crossing = None if _covered.get() else _crossing(body, run)
    note = ""
    if crossing is not None:
        size = crossing[0]
        if not run.priced:
            warn_user(f"{size} %wcode reset starts a new conversation.")
        elif over(est) is not None:
            note = size + " "  # the cap's question below says both
        else:  # a priced long prompt is asked about in a notebook, as an over-budget call is
            answer = hooks.may_spend(f"{size} Send it?")
            if answer is False:
                raise BudgetError(f"Not sent: you declined. {size}")
            if answer is None:
                warn_user(f"{size} Sent; %wcode reset starts a new conversation.")
    check(est, "this call", note)
    if crossing is not None:
        _warned.add(crossing[1])
    with _lock:
        _reserved[0] += est.total
    return est.total


def question(bodies: Sequence[Mapping[str, Any]], what: str = "this call") -> str | None:
    """For a front-end that asks in its own way (the panel's buttons, ``notebook/spend.py``): what to ask before
    sending ``bodies``, or None when nothing needs asking. It covers what the client would ask: a priced prompt
    above ``warn_prompt_tokens`` (said once per conversation: it counts as said once asked) and the cap. After a
    yes, send inside ``covered()``; without one, send nothing."""
    est = estimate(bodies)
    notes = []
    for body, run in zip(bodies, est.runs, strict=True):
        crossing = _crossing(body, run)
        if crossing is not None and run.priced:
            notes.append(crossing[0])
            _warned.add(crossing[1])
    reason = over(est, what)
    if reason is None and not notes:
        return None
    return " ".join([*notes, *([reason] if reason else [])]) + " Send anyway?"


def _crossing(body: Mapping[str, Any], run: RunCost) -> tuple[str, tuple[str, int]] | None:
    """(what to say, its conversation key) when this prompt is above ``warn_prompt_tokens`` for the first time in
    its conversation; None otherwise."""
    threshold = SESSION.warn_prompt_tokens
    if threshold is None or run.prompt_tokens <= threshold:
        return None
    key = (_conversation(body), threshold)
    if key in _warned:
        return None
    cost = f"up to {yuan(run.cost)} with the answer" if run.cost is not None else "price unknown"
    size = f"This prompt is about {run.prompt_tokens:,} tokens (over warn_prompt_tokens={threshold:,})"
    return f"{size} on {run.model}, {cost}.", key


def release(held: float) -> None:
    """A call ended: its worst case is no longer held (its real cost is in ``spent`` by now)."""
    if held:
        with _lock:
            _reserved[0] = max(_reserved[0] - held, 0.0)


def _conversation(body: Mapping[str, Any]) -> str:
    """What stays the same while a conversation grows: its model and first two messages (hashed: kept all session)."""
    messages = body.get("messages") or []
    text = json.dumps([body.get("model"), messages[:2]], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
