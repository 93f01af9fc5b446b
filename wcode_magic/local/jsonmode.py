"""The local model speaks JSON: answers for ``response_format`` json_schema (or json_object) that fit the schema.

Pure (no I/O). :func:`plan` reads the response format (a schema it cannot honour raises :class:`Unsupported`
naming what, which the server answers with a 400); :func:`answer` turns a :class:`~.generate.Generation` into the
tokens of one JSON value, walking the schema:

- structure (braces, keys, commas, quotes) is fixed, not sampled: logprob 0, the token itself its only alternative,
  as the reasoning opening is;
- a string is drawn word by word from the trigram model, continuing from the prompt: it starts with a word (a
  punctuation mark or line break drawn first is drawn again; the logprob is the model's for the word drawn) without
  its leading space, and stays on one line, at most :data:`STRING_TOKENS` tokens or ``maxLength`` characters;
- an enum (and a boolean, read as the words yes/true and no/false) is one token drawn among the allowed values,
  each weighted by the model's probability of the value's word after the prompt, renormalised over the values
  and shaped by the temperature: the logprobs report exactly these probabilities, every value among the
  alternatives;
- a number is drawn uniformly from its range (``minimum``/``maximum``, else 0 to 10; a float in steps of 0.01):
  the bundled corpus has no numbers for the model to know, and the logprob says how uniform it is;
- an array has ``minItems`` to ``maxItems`` items (else 1 to 3), an object every property in order, optional ones
  too; ``anyOf``/``oneOf`` and type lists take their first non-null choice.

json_object without a schema answers ``{"answer": "<words>"}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .generate import Generation, Token, with_stops
from .sampling import History
from .schemarefs import RefError, inline_refs

STRING_TOKENS = 12
MIN_STRING_TOKENS = 3
FIRST_WORD_TRIES = 20
DEFAULT_ITEMS = (1, 3)
DEFAULT_RANGE = (0, 10)
FLOAT_STEP = 0.01
SENTENCE_ENDS = frozenset({".", "?", "!"})
# keywords that only describe (or that this generator honours); anything else in a schema is refused by name
_HONOURED = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "oneOf",
    "description", "title", "default", "examples", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "maxLength", "minItems", "maxItems", "$schema", "$id", "$defs", "definitions", "$ref", "strict", "nullable",
    "propertyOrdering", "$comment", "deprecated", "readOnly", "writeOnly",
}  # fmt: skip
_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
_YES = (" yes", " true", " Yes", " True")
_NO = (" no", " false", " No", " False")
FALLBACK_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


class Unsupported(ValueError):
    """A response format or schema the local model cannot honour; the message names what and where."""


@dataclass(frozen=True)
class JsonPlan:
    """What to answer: a JSON value fitting ``schema`` (refs resolved)."""

    schema: dict[str, Any]
    kind: str  # json_schema | json_object


class JsonToken(Token):
    """A token of the JSON answer, whose alternatives are texts (they need not be words of the vocabulary)."""

    __slots__ = ("alts",)

    def __init__(self, text: str, logprob: float, alts: list[tuple[str, float]]) -> None:
        super().__init__(text, -1, logprob, None)
        self.alts = alts


def plan(response_format: Any) -> JsonPlan | None:
    """The plan for a request's ``response_format`` (None: plain text); Unsupported for what cannot be honoured."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise Unsupported('response_format must be an object such as {"type": "json_object"}')
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JsonPlan(FALLBACK_SCHEMA, "json_object")
    if kind != "json_schema":
        raise Unsupported(f"response_format.type must be text, json_object or json_schema, not {kind!r}")
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise Unsupported('response_format json_schema needs "json_schema": {"name": ..., "schema": {...}}')
    schema = resolve(spec["schema"])
    check(schema, "schema")
    return JsonPlan(schema, "json_schema")


def resolve(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$ref``s replaced by their definitions; Unsupported for recursion or a bad ref."""
    try:
        return inline_refs(schema)
    except RefError as e:
        if e.recursive:
            raise Unsupported(
                f"the schema refers to itself through {e.ref}: recursive schemas cannot be generated"
            ) from None
        raise Unsupported(f"$ref {e.ref!r} names no definition (only #/$defs/... and #/definitions/...)") from None


def check(node: Any, where: str) -> None:
    """Refuse, naming the place, every schema feature the generator cannot guarantee."""
    if not isinstance(node, Mapping):
        raise Unsupported(f"{where} must be a JSON Schema object")
    odd = sorted(k for k in node if k not in _HONOURED)
    if odd:
        raise Unsupported(f"the local model cannot honour {odd[0]!r} (at {where})")
    kinds = node.get("type")
    listed = [kinds] if isinstance(kinds, str) else kinds
    if listed is not None and (not isinstance(listed, list) or any(k not in _TYPES for k in listed)):
        raise Unsupported(f"type {kinds!r} is not a JSON Schema type (at {where})")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise Unsupported(f"enum must be a non-empty list (at {where})")
    low, high = node.get("minItems", 0), node.get("maxItems")
    if high is not None and low > high:
        raise Unsupported(f"minItems {low} is above maxItems {high} (at {where})")
    if _number_range(node) is None:
        raise Unsupported(f"no number lies between its minimum and maximum (at {where})")
    for name, sub in (node.get("properties") or {}).items():
        check(sub, f"{where}.properties.{name}")
    if isinstance(node.get("items"), Mapping):
        check(node["items"], f"{where}.items")
    for key in ("anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or ()):
            check(sub, f"{where}.{key}[{i}]")
    generable = node.get("properties") or any(k in node for k in ("enum", "const", "anyOf", "oneOf"))
    if not generable and _kind(node) is None:
        raise Unsupported(f"a value with no type, enum or const cannot be generated (at {where})")


def _kind(node: Mapping[str, Any]) -> str | None:
    """The type to generate: the node's (first non-null of a list), else object for properties; None if unknown."""
    kinds = node.get("type")
    if isinstance(kinds, list):
        real = [k for k in kinds if k != "null"]
        return real[0] if real else "null"
    if kinds is None and ("properties" in node or "additionalProperties" in node):
        return "object"
    if kinds is None and "items" in node:
        return "array"
    return kinds


def _number_range(node: Mapping[str, Any]) -> tuple[float, float] | None:
    """(low, high) for a number; None when the bounds leave nothing."""
    integer = node.get("type") == "integer"
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    step = 1 if integer else FLOAT_STEP
    lo = float(low if low is not None else (DEFAULT_RANGE[0] if high is None or high >= 0 else high - 10))
    hi = float(high if high is not None else max(lo + DEFAULT_RANGE[1], DEFAULT_RANGE[1]))
    if "exclusiveMinimum" in node and "minimum" not in node:
        lo += step
    if "exclusiveMaximum" in node and "maximum" not in node:
        hi -= step
    if integer:
        lo, hi = math.ceil(lo), math.floor(hi)
    return (lo, hi) if lo <= hi else None


class _Writer:
    """Walks the schema and yields the answer's tokens."""

    def __init__(self, generation: Generation, top_n: int | None) -> None:
        self.gen = generation
        self.model = generation.model
        self.top_n = top_n
        self.prompt_context = self.model.prompt_context(generation.request.prompt)
        self.context = self.prompt_context
        self.history = History(self.model.size, generation.prompt_ids)

    def fixed(self, text: str) -> JsonToken:
        return JsonToken(text, 0.0, [(text, 0.0)] if self.top_n else [])

    def value(self, node: Mapping[str, Any]) -> Iterator[JsonToken]:
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            real = [b for b in branches if _kind(b) != "null"] or branches
            yield from self.value(real[0])
            return
        if "const" in node:
            yield self.fixed(json.dumps(node["const"], ensure_ascii=False))
            return
        if "enum" in node:
            yield from self.choice(list(node["enum"]))
            return
        kind = _kind(node)
        if kind == "object":
            yield from self.object(node)
        elif kind == "array":
            yield from self.array(node)
        elif kind == "string":
            yield from self.string(node)
        elif kind in ("integer", "number"):
            yield self.number(node)
        elif kind == "boolean":
            yield from self.choice([True, False])
        else:
            yield self.fixed("null")

    def object(self, node: Mapping[str, Any]) -> Iterator[JsonToken]:
        props = node.get("properties") or {}
        yield self.fixed("{")
        for i, (name, sub) in enumerate(props.items()):
            yield self.fixed(("" if i == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
            yield from self.value(sub)
        yield self.fixed("}")

    def array(self, node: Mapping[str, Any]) -> Iterator[JsonToken]:
        low = int(node.get("minItems", DEFAULT_ITEMS[0] if node.get("maxItems", 1) else 0))
        high = int(node.get("maxItems", max(low, DEFAULT_ITEMS[1])))
        count = int(self.gen.rng.integers(low, high + 1)) if high > low else low
        items: Mapping[str, Any] = node["items"] if isinstance(node.get("items"), Mapping) else {"type": "string"}
        yield self.fixed("[")
        for i in range(count):
            if i:
                yield self.fixed(", ")
            yield from self.value(items)
        yield self.fixed("]")

    def string(self, node: Mapping[str, Any]) -> Iterator[JsonToken]:
        limit = node.get("maxLength")
        yield self.fixed('"')
        length = 0
        context = self.context
        count = tries = 0
        while count < STRING_TOKENS:
            token = self.gen._next(context, self.history, self.model.paragraph_id)
            if count == 0 and not token.text.strip()[:1].isalnum() and tries < FIRST_WORD_TRIES:
                tries += 1  # a string starts with a word: punctuation or a line break drawn first is drawn again
                continue
            if count and "\n" in token.text:
                break  # one line
            text = token.text.lstrip(" ") if count == 0 else token.text
            if limit is not None and length + len(text) > limit:
                break
            context = (context[1], token.id)
            length += len(text)
            alts: list[tuple[str, float]] = []
            if self.top_n and token.top is not None:
                ids, values = token.top
                alts = [(_escaped(self.model.vocab[i], count == 0), v) for i, v in zip(ids, values, strict=True)]
            yield JsonToken(_escaped(token.text, count == 0), token.logprob, alts)
            count += 1
            if count >= MIN_STRING_TOKENS and token.text in SENTENCE_ENDS:
                break
        self.context = context
        yield self.fixed('"')

    def number(self, node: Mapping[str, Any]) -> JsonToken:
        lo, hi = _number_range(node) or (0.0, 0.0)
        integer = node.get("type") == "integer"
        step = 1.0 if integer else FLOAT_STEP
        count = round((hi - lo) / step) + 1
        k = int(self.gen.rng.integers(0, count))
        logprob = -math.log(count)

        def text(i: int) -> str:
            v = lo + i * step
            return str(round(v)) if integer else str(round(v, 2))

        alts = [(text(i), logprob) for i in range(k, min(k + (self.top_n or 0), count))] if self.top_n else []
        return JsonToken(text(k), logprob, alts)

    def choice(self, values: list[Any]) -> Iterator[JsonToken]:
        weights = np.array([self._weight(v) for v in values], dtype=float)
        temperature = self.gen.request.params.temperature
        logp = np.log(weights)
        logp = logp - np.log(np.exp(logp - logp.max()).sum()) - logp.max()
        if temperature == 0.0:
            k = int(np.argmax(logp))
        else:
            shaped = logp / temperature if temperature != 1.0 else logp
            shaped = shaped - shaped.max()
            probs = np.exp(shaped) / np.exp(shaped).sum()
            if temperature != 1.0:  # report the distribution sampled from, as the sampling module does
                logp = np.log(probs)
            k = int(
                min(
                    np.searchsorted(np.cumsum(probs), self.gen.rng.random() * probs.sum(), side="right"),
                    len(values) - 1,
                )
            )
        quoted = isinstance(values[k], str)
        alts: list[tuple[str, float]] = []
        if self.top_n:
            order = np.argsort(-logp, kind="stable")[: self.top_n]
            alts = [(_choice_text(values[i]), float(logp[i])) for i in order.tolist()]
        if quoted:
            yield self.fixed('"')
        yield JsonToken(_choice_text(values[k]), float(logp[k]), alts)
        if quoted:
            yield self.fixed('"')

    def _weight(self, value: Any) -> float:
        """The model's probability of a value's word after the prompt (a floor for words it does not know)."""
        if isinstance(value, bool):
            words: tuple[str, ...] = _YES if value else _NO
        else:
            text = str(value).strip()
            first = text.split()[0] if text.split() else text
            words = (" " + first, " " + first.lower(), " " + first.capitalize(), first)
        ids = {self.model.index[w] for w in words if w in self.model.index}
        floor = float(np.min(self.model._unigram)) if hasattr(self.model, "_unigram") else 1e-6
        return max(sum(self.model.prob(self.prompt_context, i) for i in ids), floor)


def _escaped(text: str, first: bool) -> str:
    """A word as it appears inside a JSON string (the first one without its leading space)."""
    return json.dumps(text.lstrip(" ") if first else text, ensure_ascii=False)[1:-1]


def _choice_text(value: Any) -> str:
    """An allowed value as its token: a string's text (between the fixed quotes), else its JSON."""
    return json.dumps(value, ensure_ascii=False)[1:-1] if isinstance(value, str) else json.dumps(value)


def answer(json_plan: JsonPlan, generation: Generation, room: int) -> Iterator[Token]:
    """The answer's tokens: at most ``room`` (finish ``length`` when cut, else ``stop``), stop strings applied."""
    return with_stops(_written(json_plan, generation, room), generation)


def _written(json_plan: JsonPlan, generation: Generation, room: int) -> Iterator[Token]:
    writer = _Writer(generation, generation.request.top_logprobs)
    for sent, token in enumerate(writer.value(json_plan.schema)):
        if sent >= room:
            generation.finish_reason = "length"
            return
        yield token
    generation.finish_reason = "stop"
