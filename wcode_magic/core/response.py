"""Response: everything one chat call produced, folded from stream events.

Text arrives in thousands of small pieces, so pieces are kept in lists and joined lazily (``self.text +=
piece`` on an attribute is quadratic: design.md). A stream that fails still yields a Response, marked
incomplete, which the raised exception carries in ``.partial``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import catalog, hooks
from .errors import SchemaError, warn_user
from .keys import Secret, scrub_all
from .logprobs import LogprobColumns, normalize_entry, normalize_in_place
from .schema import Schema, parse_json
from .stream import SEGMENTS, Event, ThinkSplitter, check_depth, chunk_events, loads, logprobs_state


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Build many small containers without the cyclic GC rescanning them all (they hold no cycles)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _short(value: Any) -> str:
    """A server's value for a message: its repr, cut to 40 characters (a huge number or list stays readable)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_UNKNOWN_ENTRY: dict[str, Any] = {"token": None, "logprob": None, "bytes": None, "top_logprobs": []}


MAX_COUNT = 2**53  # far above any real token count, and still exact as a float price and an SQLite INTEGER
_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _count(value: Any) -> int | None:
    """A token count as sent, or None when it is none: a non-negative integer below MAX_COUNT (``12.0`` too)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_COUNT:
        return None
    return value


@dataclass
class Usage:
    """Token counts as the server reported them; None where it did not say (never a guessed zero).

    A count the server sent that is no count (a string, a list, a negative or astronomically large number) is
    None as well, and named in ``odd``: it would otherwise fail later, in the cost, the footer, the usage totals
    or the history, after the answer itself had arrived. ``raw`` keeps the object as sent.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    odd: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def from_wire(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls(odd=[f"usage={_short(usage)} (not an object)"])
        odd: list[str] = []
        counts: dict[str, int | None] = {}
        for name in _COUNTS:
            counts[name] = _count(usage.get(name))
            if counts[name] is None and usage.get(name) is not None:
                odd.append(f"{name}={_short(usage[name])}")
        details = usage.get("completion_tokens_details")
        reasoning = None
        if isinstance(details, dict):
            reasoning = _count(details.get("reasoning_tokens"))
            if reasoning is None and details.get("reasoning_tokens") is not None:
                odd.append(f"reasoning_tokens={_short(details['reasoning_tokens'])}")
        elif details is not None:
            odd.append(f"completion_tokens_details={_short(details)}")
        return cls(**counts, reasoning_tokens=reasoning, raw=usage, odd=odd)

    @property
    def answer_tokens(self) -> int | None:
        """Completion tokens that were answer, not thinking."""
        if self.completion_tokens is None:
            return None
        return self.completion_tokens - (self.reasoning_tokens or 0)


class Response:
    """One answer: text, reasoning, logprobs, usage, cost and timings, complete or not."""

    def __init__(
        self,
        request: dict[str, Any],
        *,
        base_url: str = "",
        started: float | None = None,
        secrets: Sequence[Secret] = (),
    ) -> None:
        self.request = request
        # keys masked in what the server sends back, as it is read: an echo split over chunks is whole only here
        self._secrets = tuple(secrets)
        self.base_url = base_url
        self.id: str | None = None
        self.model: str = request.get("model", "")
        self.created: int | None = None
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.usage = Usage()
        self.error: dict[str, Any] | None = None
        self.complete = False
        self.stopped = False
        self.reasoning_details: list[dict[str, Any]] = []
        self.tool_calls: list[dict[str, Any]] = []
        # a tool loop's record, on its last step's Response (core/toolloop.py); empty for an ordinary call
        self.steps: list[Response] = []
        self.tool_turns: list[dict[str, Any]] = []
        self.tool_messages: list[dict[str, Any]] = []
        self.loop_status: str | None = None  # max_steps / stopped / error when the loop ended without an answer
        self.logprobs_status: str | None = None  # sent, empty, null (stream.logprobs_state); withheld (finish)
        self.started = time.perf_counter() if started is None else started
        self.latency_s: float | None = None
        self.ttft_s: float | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._lp_items: list[str | tuple[str, list[dict[str, Any]]]] = []
        self._lp_decoded: tuple[int, dict[str, list[dict[str, Any]]]] = (0, {})
        self._lp_columns: dict[str, LogprobColumns] = {}
        self._extra: dict[str, Any] = {}
        self._splitter = ThinkSplitter()
        self._last_meta: dict[str, Any] | None = None
        self._joined: dict[str, tuple[int, str]] = {}
        # served without the network: from a recording (wm.replay) or from the history (cache=True), made then
        self.replayed = False
        self.cached = False
        self.recorded_at: str | None = None
        # the stream's SSE data fields and their times, kept only while a recording is on (hooks.keep_wire)
        self.wire: list[tuple[float, str]] | None = None
        self.wire_body: str | None = None  # a non-streamed answer's body, likewise
        # how a failed call ended (errors.describe of its exception, keys masked): a recording replays it
        self.failure: dict[str, Any] | None = None
        self.schema: Schema | None = None  # schema= of the call: what ``parsed`` builds
        self._parsed: tuple[int, Any, SchemaError | None] | None = None

    # -- folding -------------------------------------------------------------------------------------------
    def feed(self, chunk: dict[str, Any], raw: str | None = None) -> list[Event]:
        """Apply one decoded chunk; return its events as the reader should see them (think tags split out).

        ``raw`` is the chunk's JSON text. When given, logprob entries are kept as that text and decoded on first
        access: holding ~100 small dicts per token would make the garbage collector rescan them all through a
        long stream (measured: it halves the read rate with 20 top_logprobs). Their values also go into flat
        columns right away (``logprob_columns``), which is what the frames read.
        """
        if self.logprobs_status != "sent" and self.request.get("logprobs"):
            state = logprobs_state(chunk)
            if state and (self.logprobs_status is None or state == "sent" or self.logprobs_status == "null"):
                self.logprobs_status = state
        events = chunk_events(chunk)
        split: list[Event] | None = None  # what the think splitter made of this chunk's content piece, if it ran
        kept_raw = False
        for ev in events:
            kind = ev[0]
            if kind == "content":
                if self._splitter.passthrough:  # past any opening think block: the piece is answer as it is
                    self._content.append(ev[1])
                else:
                    split = self._splitter.feed(ev[1])
                    for sub in split:
                        self._apply(sub)
            elif kind == "meta":
                if ev[1] != self._last_meta:  # every chunk repeats id and model: apply only a change
                    self._last_meta = ev[1]
                    self._apply(ev)
            elif kind == "logprobs":
                segment, entries = ev[1]
                columns = self._lp_columns.get(segment)
                if columns is None:
                    columns = self._lp_columns[segment] = LogprobColumns()
                columns.add(entries)
                if raw is None:
                    self._lp_items.append(ev[1])
                elif not kept_raw:
                    self._lp_items.append(raw)
                    kept_raw = True
            else:
                self._apply(ev)
        if split is None:  # the common case: the events as chunk_events read them
            return events
        out: list[Event] = []
        for ev in events:  # the content piece replaced by what the splitter made of it (chunk_events gives one)
            if ev[0] == "content":
                out += split
            else:
                out.append(ev)
        return out

    def _apply(self, ev: Event) -> None:
        kind, value = ev
        if kind == "content" or kind == "reasoning":
            if self.ttft_s is None:
                self.ttft_s = time.perf_counter() - self.started
            (self._content if kind == "content" else self._reasoning).append(value)
        elif kind == "usage":
            self.usage = Usage.from_wire(check_depth(value, "usage"))
            if self.usage.odd:
                warn_user(
                    f"The server sent token counts that are not counts ({', '.join(self.usage.odd)}); they are "
                    "left unknown (None), and so is the cost. The answer itself is unaffected."
                )
        elif kind == "finish":
            self.finish_reason, native = value
            self.native_finish_reason = native or self.native_finish_reason
        elif kind == "meta":
            check_depth(value, "the chunk")
            self.id = value.get("id", self.id)
            self.model = value.get("model") or self.model
            self.created = value.get("created", self.created)
            self._extra.update({k: v for k, v in value.items() if k not in ("id", "model", "created")})
        elif kind == "error":
            self.error = check_depth(value, "the error") if isinstance(value, dict) else {"message": str(value)[:500]}
        elif kind == "reasoning_details":
            self.reasoning_details.extend(check_depth(value, "reasoning_details"))
        elif kind == "tool_call":
            self._add_tool_call(check_depth(value, "a tool call"))

    def _add_tool_call(self, part: dict[str, Any]) -> None:
        index = part.get("index", len(self.tool_calls))
        while len(self.tool_calls) <= index:
            self.tool_calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call = self.tool_calls[index]
        call["id"] = part.get("id") or call["id"]
        call["type"] = part.get("type") or call["type"]
        fn = part.get("function") or {}
        call["function"]["name"] += fn.get("name") or ""
        args = fn.get("arguments")
        call["function"]["arguments"] += args if isinstance(args, str) else ("" if args is None else str(args))

    def finish(self, *, complete: bool, stopped: bool = False) -> list[Event]:
        """Close the fold: flush held-back think-tag text, stamp the latency; return the flushed events."""
        out = self._splitter.flush()
        for ev in out:
            self._apply(ev)
        if self._secrets:  # the rest of what is kept; text and reasoning are masked as they are joined
            self.reasoning_details = scrub_all(self.reasoning_details, self._secrets)
            self.tool_calls = scrub_all(self.tool_calls, self._secrets)
            self.error = scrub_all(self.error, self._secrets)
            self._extra = scrub_all(self._extra, self._secrets)
            if self._lp_columns and self._logprobs_spell_key():
                self._withhold_logprobs()
        # finish_reason "error" without an error object (protocol.md: the server's own failure) is no answer either
        self.complete = complete and self.error is None and self.finish_reason != "error"
        self.stopped = stopped
        self.latency_s = time.perf_counter() - self.started
        return out

    def echoed_key(self) -> bool:
        """Whether the answer or thinking as received held a key (an echo, perhaps split over many pieces): its
        stream's pieces must then not be kept one by one, as each may hold a part of the key."""
        return any(
            s.scrub(joined) != joined
            for joined in ("".join(self._content), "".join(self._reasoning))
            for s in self._secrets
        )

    def _logprobs_spell_key(self) -> bool:
        """Whether the answer, the thinking or a segment's sampled tokens, joined, held a key."""
        if self.echoed_key():
            return True
        for columns in self._lp_columns.values():
            joined = "".join(t for t in columns.tokens if t.__class__ is str)
            if any(s.scrub(joined) != joined for s in self._secrets):
                return True
        return False

    def _withhold_logprobs(self) -> None:
        """Drop every segment's logprob entries: each token of an echoed key is a piece of it, which masking the
        joined text cannot reach (and the alternatives at those positions are more pieces)."""
        self._lp_columns = {}
        self._lp_items = []
        self._lp_decoded = (0, {})
        self.logprobs_status = "withheld"
        warn_user(
            "The answer repeated an API key, so its token logprobs were dropped: every token would show a piece of "
            "the key. The text and thinking keep the key masked."
        )

    def scrub(self, value: Any) -> Any:
        """``value`` (text or JSON) with every key this call could have sent masked, as in what the Response keeps."""
        return scrub_all(value, self._secrets)

    # -- reading -------------------------------------------------------------------------------------------
    def _join(self, name: str, pieces: list[str]) -> str:
        cached = self._joined.get(name)
        if cached is None or cached[0] != len(pieces):
            cached = (len(pieces), scrub_all("".join(pieces), self._secrets))
            self._joined[name] = cached
        return cached[1]

    @property
    def text(self) -> str:
        """The answer as received so far (exact)."""
        return self._join("content", self._content)

    @property
    def reasoning(self) -> str:
        """The thinking as received so far ("" when the model did not think or the server did not send it)."""
        return self._join("reasoning", self._reasoning)

    def _decode(self, *, normalize: bool) -> dict[str, list[dict[str, Any]]]:
        """Entries per segment from the kept chunks; normalised (sentinels -> -inf) unless asked for as sent."""
        segments: dict[str, list[dict[str, Any]]] = {}
        with _gc_paused():
            for item in self._lp_items:
                if isinstance(item, str):  # our own decoded copy: normalise in place
                    logprobs = loads(item)["choices"][0]["logprobs"]
                    pairs = [(seg, logprobs[seg]) for seg in SEGMENTS if logprobs.get(seg)]
                    fix = normalize_in_place
                else:
                    pairs = [item]
                    fix = normalize_entry
                for segment, entries in pairs:
                    kept = segments.setdefault(segment, [])
                    start = len(kept)
                    try:
                        kept.extend(map(fix, entries) if normalize else entries)
                    except (AttributeError, TypeError):  # an entry that is no dict: one with nothing known,
                        # as in the columns (LogprobColumns.add)
                        del kept[start:]
                        good = [e if isinstance(e, dict) else dict(_UNKNOWN_ENTRY, top_logprobs=[]) for e in entries]
                        kept.extend(map(fix, good) if normalize else good)
        return segments

    @property
    def _entries(self) -> dict[str, list[dict[str, Any]]]:
        if self._lp_decoded[0] != len(self._lp_items):
            self._lp_decoded = (len(self._lp_items), self._decode(normalize=True))
        return self._lp_decoded[1]

    @property
    def logprobs(self) -> list[dict[str, Any]]:
        """Answer-token logprob entries, sentinels (-9999, -inf, None, clipped) normalised to -inf."""
        return self._entries.get("content", [])

    def logprobs_for(self, segment: str) -> list[dict[str, Any]]:
        """Normalised entries for 'content', 'refusal' or 'reasoning' (empty when the provider sent none)."""
        return self._entries.get(segment, [])

    @property
    def logprob_segments(self) -> tuple[str, ...]:
        """The segments the provider sent logprobs for, in the order they first came."""
        return tuple(self._lp_columns)

    def logprob_columns(self, segment: str) -> LogprobColumns | None:
        """A segment's logprobs as flat columns, values as sent (no decode needed); None when it has none."""
        return self._lp_columns.get(segment)

    @property
    def cost(self) -> float | None:
        """CNY, from the catalog's prices; None for models without a known price or without usage."""
        model = catalog.lookup(self.request.get("model", "")) or catalog.lookup(self.model)
        if model is None:
            return None
        return model.cost(self.usage.prompt_tokens, self.usage.completion_tokens)

    @property
    def tokens_per_s(self) -> float | None:
        """Completion tokens per second after the first token (the rate a reader sees)."""
        n = self.usage.completion_tokens
        if not n or self.latency_s is None or self.ttft_s is None or self.latency_s <= self.ttft_s:
            return None
        return n / (self.latency_s - self.ttft_s)

    @property
    def message(self) -> dict[str, Any]:
        """The assistant turn to append to a conversation.

        Reasoning text is not sent back (DeepSeek rejects ``reasoning_content`` in input); OpenRouter's
        ``reasoning_details`` are, verbatim, as it asks.
        """
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.reasoning_details:
            msg["reasoning_details"] = self.reasoning_details
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg

    @property
    def raw(self) -> dict[str, Any]:
        """The answer assembled as one non-streamed ``chat.completion`` body."""
        field_name = "reasoning"
        model = catalog.lookup(self.request.get("model", ""))
        if model is not None and model.reasoning_field == "reasoning_content":
            field_name = "reasoning_content"
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self._reasoning:
            message[field_name] = self.reasoning
        if self.reasoning_details:
            message["reasoning_details"] = self.reasoning_details
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        if self.native_finish_reason is not None:
            choice["native_finish_reason"] = self.native_finish_reason
        if self._lp_items:
            choice["logprobs"] = self._decode(normalize=False)
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            **self._extra,
            "choices": [choice],
        }
        if self.usage.raw:
            body["usage"] = self.usage.raw
        if self.error:
            body["error"] = self.error
        return body

    # -- the answer as data (schema=) -----------------------------------------------------------------------
    def _parse(self) -> tuple[Any, SchemaError | None]:
        size = len(self._content)
        if self._parsed is None or self._parsed[0] != size:
            try:
                text = self.text
                value = self.schema.parse(text) if self.schema is not None else parse_json(text)
                self._parsed = (size, value, None)
            except SchemaError as e:
                reason = self.no_answer_reason()
                if reason is not None:
                    e.message = e.args[0] + f" No answer: {reason}."
                elif self.finish_reason == "length" or (not self.complete and self.latency_s is not None):
                    why = f"finish_reason {self.finish_reason}" if self.finish_reason else self.status
                    e.message = e.args[0] + f" The answer did not end normally ({why}): it may have been cut off."
                e.args = (e.message,)
                e.partial = self
                self._parsed = (size, None, e)
        return self._parsed[1], self._parsed[2]

    @property
    def parsed(self) -> Any:
        """The answer as data: an object of the call's ``schema`` kind (a model instance, a dataclass instance, or
        a dict), or without a schema the JSON value of the answer. SchemaError, naming each field and problem,
        when the answer is not valid JSON or does not fit; its ``.partial`` is this Response (text kept)."""
        value, error = self._parse()
        if error is not None:
            raise error
        return value

    @property
    def parse_error(self) -> SchemaError | None:
        """The SchemaError ``parsed`` would raise, or None when the answer fits (for tables of many answers)."""
        return self._parse()[1]

    def field_probs(self) -> Any:
        """One row per leaf value of the JSON answer: its path, value, probability and, for enum and boolean
        fields, every allowed value's probability and the runner-up (analysis/fieldprobs.py)."""
        return hooks.provided("field_probs")(self)

    # -- display -------------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """done / stopped / error / incomplete / streaming (max_steps: a tool loop that ran out of steps)."""
        if self.loop_status is not None:
            return self.loop_status
        if self.complete:
            return "done"
        if self.stopped:
            return "stopped"
        if self.error is not None:
            return "error"
        return "incomplete" if self.latency_s is not None else "streaming"

    def footer(self) -> str:
        """One line: model, tokens (prompt / reasoning / answer), cost, time to first token, speed."""
        u = self.usage
        parts = [self.model or self.request.get("model", "?")]
        entry = catalog.lookup(self.request.get("model", "")) or catalog.lookup(self.model)
        if entry is not None and entry.caveat:
            parts[0] += f" ({entry.caveat})"
        if u.prompt_tokens is not None:
            parts.append(f"tokens {u.prompt_tokens} in / {u.reasoning_tokens or 0} thinking / {u.answer_tokens} answer")
        cost = self.cost
        if cost is not None:
            parts.append(f"¥{cost:.6f}".rstrip("0").rstrip(".") if cost else "¥0")
        if self.ttft_s is not None:
            parts.append(f"first token {self.ttft_s:.2f} s")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        if self.status != "done":
            parts.append(self.status.upper())
        served = self.served_note()
        if served:
            parts.append(served)
        return " · ".join(parts)

    def served_note(self) -> str | None:
        """ "replayed (recorded DATE), no cost now" or "cached (answered DATE), ...": for an answer served without
        the network (its cost is what it cost when it was made); None for one the server just gave."""
        if not (self.replayed or self.cached):
            return None
        what, made = ("replayed", "recorded") if self.replayed else ("cached", "answered")
        when = f" ({made} {self.recorded_at[:19].replace('T', ' ')} UTC)" if self.recorded_at else ""
        return f"{what}{when}, no cost now"

    def __repr__(self) -> str:
        text = self.text
        preview = text if len(text) <= 80 else text[:77] + "..."
        return (
            f"<Response {self.status} model={self.model!r} text={preview!r} reasoning={len(self.reasoning)} chars "
            f"finish={self.finish_reason!r}>"
        )

    def no_answer_reason(self) -> str | None:
        """Why this Response has no answer text, in words a user can act on; None when it has some, or when there
        is nothing to say beyond the empty text. The common case: a thinking model spent ``max_tokens`` on its
        thinking (finish ``length``), which otherwise looks like a silent, empty answer."""
        if self.text or self.finish_reason != "length" or not (self.reasoning or self.usage.reasoning_tokens):
            return None
        budget = self.request.get("max_tokens")
        spent = f"the whole token budget (max_tokens={budget})" if budget else "the server's token limit"
        return f"{spent} went to the thinking; raise max_tokens, lower the effort, or switch thinking off"

    def _repr_markdown_(self) -> str:
        parts = [hooks.provided("tool_steps")(self)] if self.tool_turns else []  # a tool loop's steps first
        if self.reasoning:
            quoted = self.reasoning.replace("\n", "\n> ")
            parts.append(f"<details><summary>Thinking</summary>\n\n> {quoted}\n\n</details>\n")
        reason = self.no_answer_reason()
        parts.append(self.text or (f"**No answer:** {reason}." if reason else "*(no answer text)*"))
        parts.append(f"\n\n<sub>{self.footer()}</sub>")
        return "\n".join(parts)

    # -- analysis (analysis/frames.py, render.py, wired in by the package root; pandas imported only when asked)
    def tokens(self) -> Any:
        """One row per generated token: text, offsets, logprob, prob, rank, margin, entropy (frames.tokens)."""
        return hooks.provided("tokens")(self)

    def alternatives(self) -> Any:
        """One row per (position, alternative), the sampled token always included (frames.alternatives)."""
        return hooks.provided("alternatives")(self)

    @property
    def turns(self) -> Any:
        """A tool loop's steps, one row per turn: step, kind (thinking | tool_call | tool_result | answer), name,
        arguments, result, error, tokens, cost, seconds (analysis/turns.py)."""
        return hooks.provided("turns")(self)

    def show_tokens(self, color_by: str = "prob", top: int = 5) -> Any:
        """The answer as HTML, each token coloured by ``color_by``, its top alternatives on hover."""
        return hooks.provided("show_tokens")(self, color_by=color_by, top=top)

    def branch(self, at: int, token: str | None = None, n: int = 1, **params: Any) -> Any:
        """What if another token had been sampled at answer position ``at``? Force ``token`` there (default: each
        alternative listed there), let the server continue the answer (``n`` times each) and return ``Branches``:
        a tree in a notebook, ``.frame()`` one row per path (analysis/branches.py). ``params`` override the
        original request's settings; ``dialect=`` names how the server takes a begun answer (core/prefill.py)."""
        return hooks.provided("branch")(self, at, token, n, **params)
