"""Responses and their token logprobs as tidy DataFrames.

``tokens(r)`` has one row per generated token, ``alternatives(r)`` one row per (token, alternative), ``frame(rs)``
one row per Response, ``label_probs(r, labels)`` the probability of each label at the first answer token.

Definitions (natural logs throughout; "known tokens" = the alternatives the provider returned, plus the sampled
token when the provider left it out of its own list):

- ``rank``: 1-based rank of the sampled token among the returned alternatives, by logprob (ties keep the
  provider's order); NaN when the sampled token is not in the list.
- ``margin``: sampled logprob minus the best *other* alternative's logprob. Positive: the sampled token led by
  that many nats; negative: a likelier alternative existed (sampling at temperature > 0). NaN with no other.
- ``entropy``: ``-sum(p * ln p)`` over the known tokens, in nats. It is a **lower bound** of the true entropy:
  every token the provider did not list would only add a non-negative term.
- ``top_mass``: ``sum(p)`` over the known tokens; ``1 - top_mass`` is the probability nobody reported.

Sentinels (-9999, -inf, None, values clipped at -100/-1000) become -inf, as in ``logprobs.normalize_logprob``.
When the provider ignored the request the frame is empty, ``df.attrs["reason"]`` says why, and one
``WcodeWarning`` says so: never an exception. The arithmetic is vectorised with numpy (20,000 positions x 20
alternatives in well under a second); pandas is imported inside the functions so ``import wcode_magic`` stays
fast.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidParameterError, warn_user
from ..core.logprobs import SENTINEL_FLOOR, LogprobColumns, ambiguous_token, normalize_logprob
from ..core.response import Response
from .tokentext import char_offsets, texts_from

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# wire segment -> the name shown in the ``segment`` column, in reading order
SEGMENTS = {"reasoning": "reasoning", "content": "answer", "refusal": "refusal"}
TOKEN_COLUMNS = (
    "segment",
    "position",
    "token",
    "text",
    "char_start",
    "char_end",
    "logprob",
    "prob",
    "rank",
    "top_token",
    "margin",
    "entropy",
    "top_mass",
    "n_alternatives",
)
ALTERNATIVE_COLUMNS = ("segment", "position", "rank", "token", "logprob", "prob", "is_sampled")


# -- why a frame is empty ---------------------------------------------------------------------------------------
def empty_reason(response: Response) -> str | None:
    """Why this Response has no token logprobs, in words a user can act on; None when it has some."""
    if response.logprob_segments:
        return None
    if not response.request.get("logprobs"):
        return "logprobs were not requested: call with logprobs=True (and top_logprobs=5 for alternatives)"
    no_answer = response.no_answer_reason()
    if no_answer is not None:
        return f"the answer is empty: {no_answer}"
    status = response.logprobs_status
    if status == "withheld":
        return "the answer repeated an API key, so its logprobs were dropped (every token would show a piece of it)"
    if status == "null":
        return (
            "the provider ignored the logprobs request (it answered `logprobs: null`); providers behind a router "
            "often drop the parameter silently: try another model, or the local model"
        )
    if status == "empty":
        return (
            'the provider ignored the logprobs request (it answered empty lists, {"content": [], "refusal": []}); '
            "try another model, or the local model"
        )
    return f"no logprobs arrived (the call ended before any token; status: {response.status})"


def _warn_empty(reason: str) -> None:
    """One warning, pointing at the user's call."""
    warn_user(f"No token logprobs for this response: {reason}.")


# -- the vectorised core ----------------------------------------------------------------------------------------
def _logprobs(values: list[Any]) -> np.ndarray:
    """Logprobs as sent to a float array, every sentinel (None, NaN, -inf, <= -100) as -inf."""
    import numpy as np

    try:
        arr = np.array(values, dtype=float)  # None becomes NaN
    except (TypeError, ValueError):  # something that is not a number at all: unknown, like a sentinel
        arr = np.array([normalize_logprob(v) for v in values], dtype=float)
    arr[np.isnan(arr) | (arr <= SENTINEL_FLOOR)] = -np.inf
    return arr


def _objects(values: list[Any]) -> np.ndarray:
    """A list as a 1-d object array (strings stay strings; never a 2-d array from nested lists)."""
    import numpy as np

    return np.fromiter(values, dtype=object, count=len(values))


def _exp(arr: np.ndarray) -> np.ndarray:
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(arr)


def _same_bytes(cols: LogprobColumns, p: int, flat: int) -> bool:
    """Whether alternative ``flat`` (whose token string equals position ``p``'s sampled one) is the same token.

    Only ambiguous strings (U+FFFD, escaped fragments) can stand for different bytes; unknown bytes count as equal.
    """
    token = cols.tokens[p]
    if not token or not ambiguous_token(token):
        return True
    a, b = cols.alt_bytes.get(flat), cols.bytes[p]
    return a is None or b is None or a == b


def _find_sampled(
    cols: LogprobColumns, tok: np.ndarray, s_tok: np.ndarray, s_lp: np.ndarray, lp_m: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Column of the sampled token in its position's list, or -1 when the provider left it out.

    The sampled token's listed logprob equals its own, so equal logprobs give the candidates at numpy speed;
    each is then confirmed by token (and bytes); positions without a confirmed candidate are searched in full.
    """
    import numpy as np

    counts = np.asarray(cols.counts, dtype=np.intp)
    rows, columns = np.nonzero((lp_m == s_lp[:, None]) & (np.arange(lp_m.shape[1]) < counts[:, None]))
    flat = starts[rows] + columns
    ok = np.asarray(tok[flat] == s_tok[rows], dtype=bool)
    if cols.alt_bytes:  # equal strings can still be different bytes (U+FFFD, fragments)
        for i in np.flatnonzero(ok).tolist():
            if not _same_bytes(cols, int(rows[i]), int(flat[i])):
                ok[i] = False
    where = np.full(len(cols), -1, dtype=np.intp)
    hit_rows, first = np.unique(rows[ok], return_index=True)
    where[hit_rows] = columns[ok][first]
    for p in np.flatnonzero(where < 0).tolist():
        token, start = cols.tokens[p], int(starts[p])
        for j in range(cols.counts[p]):
            if cols.alt_tokens[start + j] == token and _same_bytes(cols, p, start + j):
                where[p] = j
                break
    return where


def _segment_columns(cols: LogprobColumns, target: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(token columns, alternative columns) for one segment, as numpy arrays and lists."""
    import numpy as np

    n = len(cols)
    sampled_tok = cols.tokens
    s_tok = _objects(sampled_tok)
    s_lp = _logprobs(cols.logprobs)
    counts = np.asarray(cols.counts, dtype=np.intp)
    total = len(cols.alt_tokens)
    tok = _objects(cols.alt_tokens)
    alt_lp = _logprobs(cols.alt_logprobs)
    pos = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts
    col = np.arange(total) - np.repeat(starts, counts)

    # a padded (positions x k) matrix for ranks and per-position aggregates
    k = int(counts.max()) if n else 0
    lp_m = np.full((n, k), -np.inf)
    lp_m[pos, col] = alt_lp
    if k < 2 or bool(np.all(lp_m[:, :-1] >= lp_m[:, 1:])):  # providers list best first: no sort needed
        order = np.broadcast_to(np.arange(k), (n, k))
        rank_m = np.broadcast_to(np.arange(1, k + 1, dtype=float), (n, k))
        sorted_lp = lp_m
    else:
        key = np.full((n, k), np.nan)  # NaN padding sorts after real -inf values
        key[pos, col] = -alt_lp
        order = np.argsort(key, axis=1, kind="stable")
        rank_m = np.empty((n, k), dtype=float)
        np.put_along_axis(rank_m, order, np.broadcast_to(np.arange(1, k + 1, dtype=float), (n, k)), axis=1)
        sorted_lp = np.take_along_axis(lp_m, order, axis=1)
    alt_rank = rank_m[pos, col]

    where = _find_sampled(cols, tok, s_tok, s_lp, lp_m, starts)
    found = where >= 0
    missing = ~found
    rank = np.full(n, np.nan)
    rank[found] = rank_m[found, where[found]]
    p_m = _exp(lp_m)
    s_p = _exp(s_lp)
    with np.errstate(invalid="ignore"):
        terms = np.where(p_m > 0, -p_m * lp_m, 0.0)
        top_mass = p_m.sum(axis=1) + np.where(missing, s_p, 0.0)
        entropy = terms.sum(axis=1) + np.where(missing & (s_p > 0), -s_p * s_lp, 0.0)
        first = np.where(counts > 0, sorted_lp[:, 0], np.nan) if k else np.full(n, np.nan)
        second = np.where(counts > 1, sorted_lp[:, 1], np.nan) if k > 1 else np.full(n, np.nan)
        margin = s_lp - np.where(found & (rank == 1), second, first)
    top_token = np.full(n, None, dtype=object)
    if k:
        listed = counts > 0
        top_token[listed] = tok[starts[listed] + order[listed, 0]]

    texts = texts_from(sampled_tok, cols.bytes)
    char_start, char_end = char_offsets(texts, target)
    token_cols = {
        "position": np.arange(n),
        "token": s_tok,
        "text": texts,
        "char_start": char_start,
        "char_end": char_end,
        "logprob": s_lp,
        "prob": s_p,
        "rank": rank,
        "top_token": top_token,
        "margin": margin,
        "entropy": entropy,
        "top_mass": top_mass,
        "n_alternatives": counts,
    }

    # the long table: each position's list, then the sampled token when the provider left it out
    miss_idx = np.flatnonzero(missing)
    if len(miss_idx):
        shift: np.ndarray = np.cumsum(missing) - missing  # rows inserted before each position
        size = total + len(miss_idx)
        dest = np.arange(total) + shift[pos]
        ins = starts[miss_idx] + counts[miss_idx] + shift[miss_idx]
        a_tok = np.empty(size, dtype=object)
        a_tok[dest], a_tok[ins] = tok, s_tok[miss_idx]
        a_pos = np.empty(size, dtype=np.intp)
        a_pos[dest], a_pos[ins] = pos, miss_idx
        a_rank = np.empty(size)
        a_rank[dest], a_rank[ins] = alt_rank, np.nan
        a_lp = np.empty(size)
        a_lp[dest], a_lp[ins] = alt_lp, s_lp[miss_idx]
        a_sampled = np.zeros(size, dtype=bool)
        a_sampled[ins] = True
        sampled_rows = dest[starts[found] + where[found]]
    else:
        a_tok, a_pos, a_rank, a_lp = tok, pos, alt_rank, alt_lp
        a_sampled = np.zeros(total, dtype=bool)
        sampled_rows = starts + where
    a_sampled[sampled_rows] = True
    alt_cols = {
        "position": a_pos,
        "rank": a_rank,
        "token": a_tok,
        "logprob": a_lp,
        "prob": _exp(a_lp),
        "is_sampled": a_sampled,
    }
    return token_cols, alt_cols


def _entries(response: Response) -> dict[str, LogprobColumns]:
    """The logprob columns per wire segment (the Response fills them as chunks arrive: no decode here)."""
    return {seg: cols for seg in response.logprob_segments if (cols := response.logprob_columns(seg)) is not None}


Columns = tuple[dict[str, Any], dict[str, Any]]
# tokens() and alternatives() are usually called together on the same Response: the second call reuses the
# first one's arithmetic. Keyed weakly, so the cache lives exactly as long as the Response.
_CACHE: weakref.WeakKeyDictionary[Response, tuple[tuple[Any, ...], Columns | None]] = weakref.WeakKeyDictionary()


def _columns(response: Response, segment: str | None) -> Columns | None:
    """Token and alternative columns over the wanted segments, concatenated; None when there are none."""
    raw = _entries(response)
    stamp = (segment, len(response.text), len(response.reasoning), *(len(v) for v in raw.values()))
    cached = _CACHE.get(response)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    columns = _build_columns(response, raw, segment)
    _CACHE[response] = (stamp, columns)
    return columns


def _build_columns(response: Response, raw: dict[str, Any], segment: str | None) -> Columns | None:
    import numpy as np

    wire = {"content": response.text, "reasoning": response.reasoning, "refusal": None}
    parts = []
    for seg, shown in SEGMENTS.items():
        if segment is not None and shown != segment:
            continue
        entries = raw.get(seg)
        if entries:
            parts.append((shown, *_segment_columns(entries, wire[seg])))
    if not parts:
        return None
    tok: dict[str, Any] = {"segment": np.repeat([p[0] for p in parts], [len(p[1]["token"]) for p in parts])}
    alt: dict[str, Any] = {"segment": np.repeat([p[0] for p in parts], [len(p[2]["token"]) for p in parts])}
    for name in TOKEN_COLUMNS[1:]:
        values = [p[1][name] for p in parts]
        tok[name] = values[0] if len(values) == 1 else _concat(values)
    for name in ALTERNATIVE_COLUMNS[1:]:
        values = [p[2][name] for p in parts]
        alt[name] = values[0] if len(values) == 1 else np.concatenate(values)
    return tok, alt


def _concat(values: list[Any]) -> Any:
    import numpy as np

    if isinstance(values[0], list):
        return [v for part in values for v in part]
    return np.concatenate(values)


def _check_segment(segment: str | None) -> None:
    if segment is not None and segment not in SEGMENTS.values():
        allowed = ", ".join(repr(s) for s in SEGMENTS.values())
        raise InvalidParameterError(
            f"segment={segment!r} is not a segment: use one of {allowed}, or None for all.",
            param="segment",
            value=segment,
        )


def _frame(columns: dict[str, Any] | None, names: Sequence[str], response: Response, reason: str | None):
    import pandas as pd

    if columns is None:
        df = pd.DataFrame({name: [] for name in names})
    else:
        df = pd.DataFrame(columns, columns=list(names))
        if "char_start" in columns and any(v is None for v in columns["char_start"]):
            df["char_start"] = df["char_start"].astype("Int64")
            df["char_end"] = df["char_end"].astype("Int64")
    df.attrs["logprobs_status"] = response.logprobs_status
    if reason is not None:
        df.attrs["reason"] = reason
    return df


def _tables(response: Response, segment: str | None) -> tuple[Columns | None, str | None]:
    """The columns, or None and the reason there are none (warned about once)."""
    _check_segment(segment)
    reason = empty_reason(response)
    columns = None if reason else _columns(response, segment)
    if reason is None and columns is None:
        reason = f"the provider sent no logprobs for the {segment} segment (it sent: {response.logprob_segments})"
    if reason is not None:
        _warn_empty(reason)
    return columns, reason


# -- public -----------------------------------------------------------------------------------------------------
def tokens(response: Response, segment: str | None = None) -> pd.DataFrame:
    """One row per generated token (see the module docstring for ``rank``, ``margin``, ``entropy``, ``top_mass``).

    ``char_start``/``char_end`` index ``response.text`` for the answer and ``response.reasoning`` for reasoning
    (the refusal's own text for refusal rows); they are missing where a token's text is not found there (a
    think block the client moved out of the answer).
    """
    columns, reason = _tables(response, segment)
    return _frame(columns and columns[0], TOKEN_COLUMNS, response, reason)


def alternatives(response: Response, segment: str | None = None) -> pd.DataFrame:
    """One row per (position, alternative): ``rank``, ``token``, ``logprob``, ``prob``, ``is_sampled``.

    The sampled token is always present at its position: when the provider left it out of its own list it is
    added with ``is_sampled`` True and ``rank`` NaN.
    """
    columns, reason = _tables(response, segment)
    return _frame(columns and columns[1], ALTERNATIVE_COLUMNS, response, reason)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def frame(responses: Response | Iterable[Response | None]) -> pd.DataFrame:
    """One row per Response: ``rows.COLUMNS`` (the history table's columns), with scalar request parameters
    (temperature, seed, top_p, ...) also spread into their own columns after ``params`` so runs compare."""
    import pandas as pd

    from .rows import COLUMNS, response_row

    items = [responses] if isinstance(responses, Response) else [r for r in responses if r is not None]
    for r in items:
        if not isinstance(r, Response):
            raise InvalidParameterError(
                f"responses must be Response objects (from wm.chat); got {type(r).__name__}.",
                param="responses",
                value=r,
            )
    rows = [response_row(r, when=None) for r in items]
    spread: dict[str, None] = {}
    for row in rows:
        for name, value in row["params"].items():
            if name not in COLUMNS and _is_scalar(value):
                spread.setdefault(name)
    data: dict[str, list[Any]] = {}
    for name in COLUMNS:
        data[name] = [row[name] for row in rows]
        if name == "params":
            for p in spread:
                data[p] = [row["params"].get(p) for row in rows]
    return pd.DataFrame(data, columns=list(data))


def _label_key(text: str) -> str:
    return text.strip().casefold()


def check_labels(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """The labels as a list and the key each pools under (stripped, case-folded); InvalidParameterError for none,
    a blank or non-string label, or two labels with the same key."""
    labels = list(labels)
    if not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise InvalidParameterError(
            f"labels must be a non-empty list of non-blank strings; got {labels!r}.", param="labels", value=labels
        )
    keys = [_label_key(x) for x in labels]
    if len(set(keys)) != len(keys):
        raise InvalidParameterError(
            f"labels {labels!r} collide once case and spaces are pooled; give distinct labels.",
            param="labels",
            value=labels,
        )
    return labels, keys


def choose_position(cols: LogprobColumns, position: int | None) -> int:
    """The answer token to read: ``position`` checked against the answer's length, or by default the first token
    with visible text (0 when there is none)."""
    n = len(cols)
    if position is None:
        texts = texts_from(cols.tokens, cols.bytes)
        position = next((i for i, t in enumerate(texts) if t.strip()), 0)
    if not 0 <= position < n:
        raise InvalidParameterError(
            f"position={position} is outside the answer's {n} tokens (0..{n - 1}).", param="position", value=position
        )
    return position


def known_at(cols: LogprobColumns, position: int) -> tuple[str, list[tuple[str | None, float]]]:
    """(sampled token, known tokens) at one position: the listed alternatives as (token, logprob), plus the sampled
    token when the provider left it out. Read from the flat columns: no decode of every entry for one token."""
    sampled = cols.tokens[position] or ""
    known = [(a["token"], a["logprob"]) for a in cols.alternatives(position, sum(cols.counts[:position]))]
    if not any(token == sampled for token, _ in known):
        known.append((sampled, normalize_logprob(cols.logprobs[position])))
    return sampled, known


def _label_of(token: str | None, keys: Sequence[str], prefix: bool) -> int | None:
    """Index of the label a token counts for: its key equals the label's, or with ``prefix`` it starts exactly one
    label's key; None for no label."""
    key = _label_key(token or "")
    if key in keys:
        return keys.index(key)
    if prefix and key:
        starts = [i for i, k in enumerate(keys) if k.startswith(key)]
        if len(starts) == 1:
            return starts[0]
    return None


@dataclass
class LabelMass:
    """Probability pooled per label at one position, what the listed tokens matching no label hold, and all the
    listed (known) tokens hold together."""

    mass: list[float]
    tokens: list[list[str | None]]
    other: float = 0.0
    listed: float = 0.0


def pool_labels(known: Iterable[tuple[str | None, float]], keys: Sequence[str], *, prefix: bool) -> LabelMass:
    """Add up each known token's probability under the label it counts for (see ``_label_of``), or as other."""
    pooled = LabelMass([0.0] * len(keys), [[] for _ in keys])
    for token, logprob in known:
        p = math.exp(logprob)
        pooled.listed += p
        hit = _label_of(token, keys, prefix)
        if hit is None:
            pooled.other += p
        else:
            pooled.mass[hit] += p
            pooled.tokens[hit].append(token)
    return pooled


LABEL_COLUMNS = ("label", "prob", "logprob", "share", "tokens")


def label_frame(labels: Sequence[str], pooled: LabelMass) -> pd.DataFrame:
    """One row per label, then ``(other listed)`` and ``(not listed)`` (1 minus the listed mass): rows sum to 1."""
    import pandas as pd

    in_labels = sum(pooled.mass)
    data: dict[str, list[Any]] = {
        "label": [*labels, "(other listed)", "(not listed)"],
        "prob": [*pooled.mass, pooled.other, max(0.0, 1.0 - pooled.listed)],
        "logprob": [math.log(m) if m > 0 else -math.inf for m in pooled.mass] + [math.nan, math.nan],
        "share": [m / in_labels if in_labels else math.nan for m in pooled.mass] + [math.nan, math.nan],
        "tokens": [*pooled.tokens, [], []],
    }
    return pd.DataFrame(data)


def label_probs(
    response: Response, labels: Sequence[str], *, position: int | None = None, prefix: bool = False
) -> pd.DataFrame:
    """Probability of each label at one answer token, pooling case and leading-space variants ("Yes", " yes").

    ``position`` defaults to the first answer token with visible text (models often open with a space or a
    newline). With ``prefix=True`` a token that starts exactly one label (``"Pos"`` for ``"Positive"``) counts
    for it. Rows: one per label (``prob``, ``logprob``, ``share`` = prob among the labels, the ``tokens``
    pooled), then ``(other listed)`` (listed alternatives matching no label) and ``(not listed)`` (mass the
    provider did not report): all rows sum to 1.
    """
    import pandas as pd

    labels, keys = check_labels(labels)
    reason = empty_reason(response)
    cols = None if reason else response.logprob_columns("content")
    if cols is None:
        reason = reason or f"the provider sent no logprobs for the answer (it sent: {response.logprob_segments})"
        _warn_empty(reason)
        df = pd.DataFrame({c: [] for c in LABEL_COLUMNS})
        df.attrs["reason"] = reason
        return df
    position = choose_position(cols, position)
    sampled, known = known_at(cols, position)
    df = label_frame(labels, pool_labels(known, keys, prefix=prefix))
    df.attrs.update(position=position, sampled=sampled, logprobs_status=response.logprobs_status)
    return df
