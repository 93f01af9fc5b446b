"""From wire chunks to typed events: pure functions, no I/O and no IPython.

``chunk_events`` reads one decoded chunk (a streamed ``chat.completion.chunk``, or a whole non-streamed
``chat.completion``, whose ``message`` reads like one big ``delta``) and returns what it says as ``Event`` tuples. Every shape in ``protocol.md`` is
handled here, so the client, the magics and the panel never look at raw JSON:

- reasoning in ``delta.reasoning`` (OpenRouter, vLLM) or ``delta.reasoning_content`` (DeepSeek, Ark, llama.cpp);
  ``reasoning_details`` repeat the same text, so they are kept verbatim but never shown or counted twice;
- ``<think>…</think>`` inline in ``content`` (Qwen through some servers) is moved to the reasoning by
  ``ThinkSplitter``, which copes with a tag cut across chunks;
- ``usage`` wherever it comes, ``finish_reason`` and ``native_finish_reason``, a top-level ``error`` mid-stream,
  logprob entries per segment, and tool-call fragments.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

import orjson


def loads(data: str | bytes) -> Any:
    """One JSON document, orjson first (about 3x faster on chunks than json).

    Python servers write ``NaN`` / ``-Infinity`` for a -inf logprob and some send lone surrogates in byte-level
    tokens; orjson rejects both, the standard library reads them, so those documents get a second try there.
    A document neither can read raises ``ValueError`` as before, and so does one nested deeper than the standard
    library's recursion allows (orjson stops at 1024 levels; ``json`` would raise ``RecursionError``).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply to read") from None


MAX_DEPTH = 32  # a chat completion nests ~12 levels deep (choices, logprobs, top_logprobs, bytes): 32 is generous


def check_depth(value: Any, what: str) -> Any:
    """``value`` unchanged, or ValueError when it nests deeper than MAX_DEPTH.

    A server's free-form objects (top-level extras, usage, an error, reasoning_details, tool calls) are kept and
    later compared, copied, written to the history and sent back in the next turn; nested hundreds of levels deep
    (orjson reads up to 1024) each of those would fail with ``RecursionError`` after the answer arrived. Checked
    without recursion, only where such an object is kept, so the per-chunk text path pays nothing.
    """
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return value
    raise ValueError(f"{what} is nested more than {MAX_DEPTH} levels deep")


EventKind = Literal[
    "start",
    "reasoning",
    "content",
    "logprobs",
    "usage",
    "finish",
    "error",
    "meta",
    "reasoning_details",
    "tool_call",
    "tools",
    "tool_call_ready",
    "tool_result",
]


class Event(NamedTuple):
    """One thing a chunk said. ``value`` depends on ``kind``:

    start: the Response about to be filled (the client's, before anything is sent); reasoning/content: the text piece; logprobs: ``(segment, [entries])``; usage: the usage dict;
    finish: ``(finish_reason, native_finish_reason)``; error: the error object; meta: ``{id, model, created,
    extra top-level keys}``; reasoning_details: the list as sent; tool_call: one ``delta.tool_calls`` item.
    A tool loop (core/toolloop.py) adds: tools: its ``ToolRun`` (first, before any step's start); tool_call_ready:
    a ``ToolCall`` about to run; tool_result: the turn row of its result.
    """

    kind: EventKind
    value: Any


DONE = "[DONE]"
# Event(kind, value) without the Python-level __new__ NamedTuple adds: a frame less per event on the hot path
_event = tuple.__new__
# what reading a JSON object of the wrong shape raises, here or while the Response folds it
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError)
SEGMENTS = ("content", "refusal", "reasoning")  # the logprob lists a choice may carry


def chunk_events(chunk: dict[str, Any]) -> list[Event]:
    """The events in one chunk, in the order a reader should apply them (text before finish and usage).

    A chunk of the wrong shape (``"choices": [null]``, ``"delta": "x"``, ``"content": 5``) raises AttributeError,
    TypeError, KeyError or IndexError; the client turns those into a StreamError (``SHAPE_ERRORS``). Fields are
    not checked one by one, which would slow every chunk, except the text, which is joined later.
    """
    out: list[Event] = []
    if "model" in chunk or "id" in chunk:
        meta = chunk.copy()  # then the keys that are not meta out: C calls, about 3x faster than a comprehension
        meta.pop("choices", None)
        meta.pop("usage", None)
        meta.pop("object", None)
        meta.pop("error", None)
        out.append(_event(Event, ("meta", meta)))
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message")
        if delta:
            # most chunks carry a piece of answer and nothing else: then the other fields are not looked for
            more = delta.__class__ is not dict or len(delta) > 1 or "content" not in delta
            if more:
                # one field or the other; a server sending both (vLLM while renaming) repeats the same text, and
                # "reasoning": "" beside a filled reasoning_content must not hide it
                reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                if reasoning:
                    if reasoning.__class__ is not str:
                        raise TypeError(f"reasoning is {type(reasoning).__name__}, not text")
                    out.append(_event(Event, ("reasoning", reasoning)))
                details = delta.get("reasoning_details")
                if details:
                    out.append(Event("reasoning_details", details))
            content = delta.get("content")
            if content:
                if content.__class__ is not str:  # joined into the answer later, where it would fail far from here
                    raise TypeError(f"content is {type(content).__name__}, not text")
                out.append(_event(Event, ("content", content)))
            if more:
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    out.extend(Event("tool_call", call) for call in tool_calls)
        logprobs = choice.get("logprobs")
        if logprobs:
            for segment in SEGMENTS:
                entries = logprobs.get(segment)
                if entries:
                    if entries.__class__ is not list:
                        raise TypeError(f"logprobs.{segment} is {type(entries).__name__}, not a list")
                    out.append(_event(Event, ("logprobs", (segment, entries))))
        finish = choice.get("finish_reason")
        if finish:
            if finish.__class__ is not str:
                raise TypeError(f"finish_reason is {type(finish).__name__}, not text")
            out.append(Event("finish", (finish, choice.get("native_finish_reason"))))
    error = chunk.get("error")
    if error:
        out.append(Event("error", error))
    usage = chunk.get("usage")
    if usage:
        out.append(Event("usage", usage))
    return out


def logprobs_state(chunk: dict[str, Any]) -> str | None:
    """What the provider did with a logprobs request in this chunk: 'sent', 'empty', 'null' or None (no choice).

    OpenRouter forwards the request and some providers drop it silently (protocol.md, Logprobs): an answer
    with ``logprobs: null`` or ``{"content": [], "refusal": []}`` is "ignored", not an empty answer.
    """
    choices = chunk.get("choices")
    if not choices:
        return None
    if "logprobs" not in choices[0] or choices[0]["logprobs"] is None:
        return "null"
    lp = choices[0]["logprobs"]
    return "sent" if any(lp.get(s) for s in SEGMENTS) else "empty"


class ThinkSplitter:
    """Moves ``<think>…</think>`` found at the start of the content into the reasoning.

    Stateful across chunks, because a tag can be cut anywhere (``<thi`` + ``nk>``). Only a think block that
    opens the answer counts: a ``<think>`` later in an answer is text the model wrote about tags. Blank lines
    that open the block are dropped, so the empty ``<think>\n\n</think>`` of Qwen's ``/no_think`` gives no
    reasoning at all (protocol.md), not a reasoning of two newlines.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._state: Literal["start", "inside", "closed", "after"] = "start"
        self._held = ""
        self._thought = False  # some reasoning other than whitespace was given out

    def _reasoning(self, text: str) -> list[Event]:
        if not self._thought:
            text = text.lstrip()
            self._thought = bool(text)
        return [Event("reasoning", text)] if text else []

    @property
    def passthrough(self) -> bool:
        """True once the answer proper has begun: every later piece is content unchanged (the common case)."""
        return self._state == "after"

    def feed(self, piece: str) -> list[Event]:
        """Split one content piece into reasoning and content events."""
        if self._state == "after":
            return [Event("content", piece)]
        if self._state == "closed":  # the blank lines after </think> may come in later chunks
            piece = piece.lstrip("\n")
            if not piece:
                return []
            self._state = "after"
            return [Event("content", piece)]
        text = self._held + piece
        self._held = ""
        if self._state == "start":
            stripped = text.lstrip()
            if not stripped:
                self._held = text
                return []
            if self.OPEN.startswith(stripped) and len(stripped) < len(self.OPEN):
                self._held = text
                return []
            if not stripped.startswith(self.OPEN):
                self._state = "after"
                return [Event("content", text)]
            self._state = "inside"
            text = stripped[len(self.OPEN) :]
        end = text.find(self.CLOSE)
        if end >= 0:
            self._state = "closed"
            return self._reasoning(text[:end]) + self.feed(text[end + len(self.CLOSE) :])
        keep = _partial_suffix(text, self.CLOSE)
        self._held = text[len(text) - keep :] if keep else ""
        return self._reasoning(text[: len(text) - keep])

    def flush(self) -> list[Event]:
        """At the end of the stream, whatever was held back is text after all."""
        held, self._held = self._held, ""
        if not held:
            return []
        return self._reasoning(held) if self._state == "inside" else [Event("content", held)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could be the start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
