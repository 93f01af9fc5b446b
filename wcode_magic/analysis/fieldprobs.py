"""How sure the model was of each field of a JSON answer: ``field_probs(r)``, one row per leaf value.

The answer's JSON is scanned with the character span of every leaf (a string's span is what lies between its
quotes), and each span is matched to the answer tokens that overlap it (their character offsets in ``r.text``):

- ``prob``: the probability of those tokens together (the product of their probabilities): how likely the model
  was to write exactly this value, given everything before it;
- ``min_prob``: the least likely token inside the value (where it hesitated most), ``n_tokens``: how many;
- for enum and boolean fields (from the call's schema; booleans also without one), ``choices``: the probability
  of every allowed value at the value's first token, pooled over case and leading-space variants as
  ``label_probs`` pools labels (``check_labels``/``known_at``/``pool_labels``, with ``prefix=True``: a token that
  starts exactly one allowed value counts for it, so a value split over several tokens is read at its first);
  text a token carries before the value (an opening quote, ``": "``) is taken off each alternative first.
  ``runner_up`` and ``runner_up_prob``: the likeliest allowed value other than the one written.

Without token logprobs the frame is empty, ``attrs["reason"]`` says to pass ``logprobs=True, top_logprobs=N`` and
one WcodeWarning says so. An answer that is not JSON raises SchemaError (``r.parsed``'s), its text kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.scanner import NUMBER_RE
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidParameterError, warn_user
from ..core.response import Response
from ..core.schema import Schema, choices_of, format_path, json_span, parse_json, schema_at
from .frames import _logprobs, check_labels, empty_reason, pool_labels
from .tokentext import char_offsets, texts_from

if TYPE_CHECKING:
    import pandas as pd

FIELD_COLUMNS = ("path", "value", "prob", "min_prob", "n_tokens", "choices", "runner_up", "runner_up_prob")
NEEDS_LOGPROBS = (
    "field_probs reads token logprobs: call with logprobs=True, top_logprobs=N (5 or more shows every allowed "
    "value's probability for enum and boolean fields)"
)


@dataclass
class Leaf:
    """One leaf value of the answer's JSON: its path, value and the characters it spans in the text."""

    path: tuple[str | int, ...]
    value: Any
    start: int
    end: int


# -- the JSON with positions -----------------------------------------------------------------------------------
_WS = " \t\n\r"


def leaves(text: str) -> list[Leaf]:
    """Every leaf of the JSON value in ``text`` (``json_span`` finds it) with its character span, in text order.

    The answer must be valid JSON (``parse_json`` raises SchemaError otherwise, before this runs)."""
    start, _ = json_span(text)
    out: list[Leaf] = []
    _value(text, _skip(text, start), (), out)
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _value(text: str, i: int, path: tuple[str | int, ...], out: list[Leaf]) -> int:
    """Scan the value at ``i``, adding its leaves; return the index after it."""
    c = text[i]
    if c == "{":
        i = _skip(text, i + 1)
        if text[i] == "}":
            out.append(Leaf(path, {}, i - 1, i + 1))
            return i + 1
        while True:
            key, i = scanstring(text, i + 1)
            i = _skip(text, _skip(text, i) + 1)  # past the colon
            i = _skip(text, _value(text, i, (*path, key), out))
            if text[i] == "}":
                return i + 1
            i = _skip(text, i + 1)  # past the comma
    if c == "[":
        i = _skip(text, i + 1)
        if text[i] == "]":
            out.append(Leaf(path, [], i - 1, i + 1))
            return i + 1
        n = 0
        while True:
            i = _skip(text, _value(text, i, (*path, n), out))
            n += 1
            if text[i] == "]":
                return i + 1
            i = _skip(text, i + 1)
    if c == '"':
        value, after = scanstring(text, i + 1)
        inner = (i + 1, after - 1) if after - 1 > i + 1 else (i, after)
        out.append(Leaf(path, value, *inner))
        return after
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, i):
            out.append(Leaf(path, value, i, i + len(word)))
            return i + len(word)
    m = NUMBER_RE.match(text, i)
    if m is None:  # parse_json accepted it, so this cannot happen; say where if it does
        raise ValueError(f"unexpected {text[i : i + 10]!r} at {i}")
    integer, frac, exp = m.groups()
    number: Any = float(integer + (frac or "") + (exp or "")) if frac or exp else int(integer)
    out.append(Leaf(path, number, i, m.end()))
    return m.end()


# -- choices ------------------------------------------------------------------------------------------------------
def _key(value: Any) -> str:
    """An allowed value as the text a token shows: a string's own text, anything else its JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _choice_masses(allowed: list[Any], known: list[tuple[str | None, float]], before: str) -> dict[str, float] | None:
    """Probability of each allowed value at one position (pooled like label_probs); None when they collide."""
    try:
        labels, keys = check_labels([_key(v) for v in allowed])
    except InvalidParameterError:  # "Yes" and "yes" both allowed: pooling cannot tell them apart
        return None
    stripped: list[tuple[str | None, float]] = []
    for token, logprob in known:
        text = token or ""
        if before:
            text = text[len(before) :] if text.startswith(before) else ""  # a token that is not this value at all
        stripped.append((text, logprob))
    pooled = pool_labels(stripped, keys, prefix=True)
    return dict(zip(labels, pooled.mass, strict=True))


def _runner_up(choices: dict[str, float], value: Any) -> tuple[str | None, float]:
    chosen = _key(value).strip().casefold()
    others = [(label, p) for label, p in choices.items() if label.strip().casefold() != chosen]
    if not others:
        return None, math.nan
    label, p = max(others, key=lambda lp: lp[1])
    return label, p


def _offsets(texts: list[str], text: str) -> tuple[list[int | None], list[int | None]]:
    """Each token's place in the answer text. When the tokens also hold a thinking block the client moved out of
    the answer (``<think>...</think>`` inline), the answer is the end of what they spell: tokens before it get no
    place, rather than being aligned by chance with a brace of the JSON."""
    raw = "".join(texts)
    if raw != text and text and raw.endswith(text):
        shift = len(raw) - len(text)
        starts, ends = char_offsets(texts)
        return (
            [
                None if e is None or e <= shift else max(s or 0, shift) - shift
                for s, e in zip(starts, ends, strict=True)
            ],
            [None if e is None or e <= shift else e - shift for e in ends],
        )
    return char_offsets(texts, text)


# -- public ---------------------------------------------------------------------------------------------------------
def field_probs(response: Response) -> pd.DataFrame:
    """One row per leaf value of the JSON answer (see the module docstring): ``path`` (``items[2].name``),
    ``value``, ``prob``, ``min_prob``, ``n_tokens``, and for enum and boolean fields ``choices`` (allowed value ->
    probability), ``runner_up`` and ``runner_up_prob``."""
    import pandas as pd

    reason = empty_reason(response)
    if reason is not None and not response.request.get("logprobs"):
        reason = NEEDS_LOGPROBS
    cols = None if reason else response.logprob_columns("content")
    if cols is None:
        reason = reason or f"the provider sent no logprobs for the answer (it sent: {response.logprob_segments})"
        warn_user(f"No field probabilities for this response: {reason}.")
        df = pd.DataFrame({c: [] for c in FIELD_COLUMNS})
        df.attrs["reason"] = reason
        return df
    text = response.text
    try:
        parse_json(text)
    except Exception as e:  # SchemaError: the Response goes with it
        e.partial = response  # type: ignore[attr-defined]
        raise
    data = _leaf_data(response, cols, choices=True)
    df = pd.DataFrame(data, columns=list(FIELD_COLUMNS))
    df.attrs["logprobs_status"] = response.logprobs_status
    if not response.request.get("top_logprobs") and df["choices"].notna().any():
        df.attrs["note"] = "without top_logprobs only the written value's own probability is known"
    return df


def _leaf_data(response: Response, cols: Any, *, choices: bool) -> dict[str, list[Any]]:
    """``field_probs``'s columns as lists, for an answer that parses; without ``choices`` the enum and boolean
    columns are left empty (None / NaN), for callers that want only each leaf's probability (a sweep's rows)."""
    import numpy as np

    text = response.text
    found = leaves(text)

    texts = texts_from(cols.tokens, cols.bytes)
    starts_l, ends_l = _offsets(texts, text)
    placed = [i for i, s in enumerate(starts_l) if s is not None]  # tokens outside the answer text (a think block)
    starts = np.array([starts_l[i] for i in placed], dtype=np.int64)
    ends = np.array([ends_l[i] for i in placed], dtype=np.int64)
    lp = _logprobs(cols.logprobs)[placed] if placed else np.zeros(0)
    alt_starts = np.concatenate([[0], np.cumsum(cols.counts)]).tolist()
    schema: Schema | None = response.schema

    data: dict[str, list[Any]] = {name: [] for name in FIELD_COLUMNS}
    for leaf in found:
        lo = int(np.searchsorted(ends, leaf.start, side="right"))
        while lo > 0 and starts[lo - 1] == ends[lo - 1] == leaf.start:  # the first bytes of its first character
            lo -= 1
        hi = int(np.searchsorted(starts, leaf.end, side="left"))
        inside = lp[lo:hi]
        n = hi - lo
        data["path"].append(format_path(leaf.path))
        data["value"].append(leaf.value)
        data["prob"].append(math.exp(float(inside.sum())) if n else math.nan)
        data["min_prob"].append(math.exp(float(inside.min())) if n else math.nan)
        data["n_tokens"].append(n)
        allowed = None
        if choices:
            allowed = choices_of(schema_at(schema.json, leaf.path)) if schema is not None else None
            if allowed is None and isinstance(leaf.value, bool):
                allowed = [True, False]
        masses = None
        if allowed is not None and n:
            position = placed[lo]
            sampled = cols.tokens[position] or ""
            known = [(a["token"], a["logprob"]) for a in cols.alternatives(position, alt_starts[position])]
            if not any(token == sampled for token, _ in known):
                known.append((sampled, float(lp[lo])))
            before = text[int(starts[lo]) : leaf.start] if starts[lo] < leaf.start else ""
            masses = _choice_masses(allowed, known, before)
        data["choices"].append(masses)
        runner = _runner_up(masses, leaf.value) if masses else (None, math.nan)
        data["runner_up"].append(runner[0])
        data["runner_up_prob"].append(runner[1])
    return data


def top_level_probs(frame: pd.DataFrame, fields: Sequence[str]) -> dict[str, float]:
    """Each top-level field's probability: its tokens together, over every leaf under it (NaN when absent)."""
    return _top_level(frame["path"].tolist(), frame["prob"].tolist(), fields)


def row_probs(response: Response, fields: Sequence[str]) -> dict[str, float]:
    """``top_level_probs(field_probs(response), fields)`` without building the DataFrame (a sweep does this for
    every row): for an answer that parses and has answer logprobs; the same numbers."""
    cols = response.logprob_columns("content")
    if cols is None:
        return {}
    data = _leaf_data(response, cols, choices=False)
    return _top_level(data["path"], data["prob"], fields)


def _top_level(paths: list[str], probs: list[float], fields: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in fields:
        head = format_path((name,))
        mine = [
            p for path, p in zip(paths, probs, strict=True) if path == head or path.startswith((head + ".", head + "["))
        ]
        out[name] = math.prod(mine) if mine else math.nan
    return out
