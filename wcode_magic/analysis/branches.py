"""What if the model had picked another token? ``r.branch(at, token=None, n=1, **params)`` and ``Branches``.

A branch forces a token at an answer position: the answer's first ``at`` tokens and the forced token are sent as
the assistant's begun turn (a prefill, in the server's own dialect: core/prefill.py) and the server writes the
rest. With no ``token``, every alternative listed at that position is forced in turn (the sampled token is the
original path, shown as such). ``n`` continuations are asked for each forced token; with a ``seed`` (given or in
the original request) the i-th of them uses ``seed + i``, so they differ and re-run the same.

``Branches`` displays as a tree in a notebook: the shared beginning once, then the original path and each fork,
every token coloured by its probability and the forced token framed. ``.frame()`` has one row per path.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..core import prefill
from ..core.errors import InvalidParameterError
from ..core.response import Response
from .colours import HEAT_LIGHT as PALETTE
from .render import bucket, visible
from .tokentext import texts_from

MAX_N = 20


@dataclass
class Branch:
    """One forced token at ``position`` and what the server wrote after it (``response``)."""

    position: int
    token: str  # the forced token's text (a fragment of a character shows as U+FFFD)
    token_bytes: bytes
    prob: float | None  # its probability at that position in the original answer; None when it was not listed
    prefix: str  # the answer up to and including the forced token, as sent
    response: Response

    @property
    def continuation(self) -> str:
        return self.response.text

    @property
    def text(self) -> str:
        """The whole branched answer: the prefix, then the continuation."""
        return self.prefix + self.response.text

    @property
    def mean_logprob(self) -> float | None:
        """Mean logprob of the continuation's tokens (None without logprobs)."""
        return _mean([e.get("logprob") for e in self.response.logprobs])


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _prob(logprob: Any) -> float | None:
    return math.exp(logprob) if isinstance(logprob, (int, float)) and math.isfinite(logprob) else None


class Branches:
    """The original answer and its forks at one position: a tree in a notebook, rows in :meth:`frame`."""

    def __init__(self, original: Response, position: int, branches: list[Branch]) -> None:
        self.original = original
        self.position = position
        self.branches = branches

    def __len__(self) -> int:
        return len(self.branches)

    def __iter__(self) -> Iterator[Branch]:
        return iter(self.branches)

    def __getitem__(self, i: int) -> Branch:
        return self.branches[i]

    def _original_row(self) -> dict[str, Any]:
        entries = self.original.logprobs
        pieces = _texts(entries)
        here = entries[self.position]
        return {
            "branch": "original",
            "position": self.position,
            "token": pieces[self.position],
            "forced": False,
            "prob": _prob(here.get("logprob")),
            "continuation": "".join(pieces[self.position + 1 :]),
            "text": self.original.text,
            "mean_logprob": _mean([e.get("logprob") for e in entries[self.position + 1 :]]),
            "tokens": len(entries) - self.position - 1,
            "finish_reason": self.original.finish_reason,
            "cost": self.original.cost,
        }

    def rows(self) -> list[dict[str, Any]]:
        """The original path, then one row per branch (what :meth:`frame` holds, without pandas)."""
        rows = [self._original_row()]
        for i, b in enumerate(self.branches, 1):
            rows.append(
                {
                    "branch": i,
                    "position": b.position,
                    "token": b.token,
                    "forced": True,
                    "prob": b.prob,
                    "continuation": b.continuation,
                    "text": b.text,
                    "mean_logprob": b.mean_logprob,
                    "tokens": len(b.response.logprobs) or b.response.usage.answer_tokens,
                    "finish_reason": b.response.finish_reason,
                    "cost": b.response.cost,
                }
            )
        return rows

    def frame(self) -> Any:
        """One row per path: branch ("original", 1, 2, …), position, forced token, its probability there,
        continuation, whole text, mean logprob of the continuation, its tokens, finish reason, cost (CNY)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __repr__(self) -> str:
        forced = ", ".join(repr(b.token) for b in self.branches[:6]) + (", …" if len(self.branches) > 6 else "")
        return f"<Branches at position {self.position}: {len(self.branches)} forks ({forced})>"

    # -- the tree -------------------------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        entries = self.original.logprobs
        pieces = _texts(entries)
        shared = "".join(span(pieces[i], _prob(entries[i].get("logprob"))) for i in range(self.position))
        lines = [
            _line(
                "original",
                span(pieces[self.position], _prob(entries[self.position].get("logprob")), mark="orig")
                + "".join(
                    span(pieces[i], _prob(entries[i].get("logprob"))) for i in range(self.position + 1, len(pieces))
                ),
                self.original.finish_reason,
                _mean([e.get("logprob") for e in entries[self.position + 1 :]]),
            )
        ]
        for b in self.branches:
            continuation = b.response.logprobs
            body = span(b.token, b.prob, mark="forced")
            if continuation:
                texts = _texts(continuation)
                body += "".join(span(t, _prob(e.get("logprob"))) for t, e in zip(texts, continuation, strict=True))
            else:
                body += span(b.continuation, None)
            lines.append(_line(f"#{self.branches.index(b) + 1}", body, b.response.finish_reason, b.mean_logprob))
        note = (
            "colour: probability of each token (red = unlikely, pale = likely); framed: the forced token; "
            "outlined: the token the original answer sampled there"
        )
        return (
            f"{_STYLE}<div class='wm-br'><div class='wm-note'>{html.escape(note)}</div>"
            f"<div class='wm-root'>{shared}</div><ul>{''.join(lines)}</ul></div>"
        )


_STYLE = (
    "<style>.wm-br{font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.7}"
    ".wm-br ul{list-style:none;margin:0 0 0 1.2em;padding:0;border-left:2px solid #bbb}"
    ".wm-br li{padding-left:.6em}.wm-br .wm-note,.wm-br .wm-meta{color:#666;font-size:85%}"
    ".wm-br .wm-label{color:#666;margin-right:.5em}.wm-br span.t{color:#000}"
    ".wm-br .forced{outline:2px solid #1f4e9a;font-weight:bold}.wm-br .orig{outline:1px dashed #555}</style>"
)


def _texts(entries: list[dict[str, Any]]) -> list[str]:
    return texts_from([e.get("token") for e in entries], [e.get("bytes") for e in entries])


def span(text: str, prob: float | None, mark: str = "") -> str:
    colour = PALETTE[bucket("prob", prob, math.nan, math.nan)] if prob is not None else "#eee"
    title = f"p={prob:.3g}" if prob is not None else "p not known"
    cls = f"t {mark}".strip()
    return f"<span class='{cls}' style='background:{colour}' title='{title}'>{html.escape(visible(text))}</span>"


def _line(label: str, body: str, finish: str | None, mean: float | None) -> str:
    meta = f"finish {finish}" + (f" · mean logprob {mean:.2f}" if mean is not None else "")
    return (
        f"<li><span class='wm-label'>{html.escape(label)}</span>{body} "
        f"<span class='wm-meta'>({html.escape(meta)})</span></li>"
    )


# -- branching -------------------------------------------------------------------------------------------------------
def _position(at: Any, size: int) -> int:
    if isinstance(at, bool) or not isinstance(at, int) or not -size <= at < size:
        raise InvalidParameterError(
            f"at={at!r} is not allowed: give an answer token position from 0 to {size - 1} (or -1 for the last).",
            param="at",
            value=at,
        )
    return at % size


def _forced(entry: Mapping[str, Any], token: Any) -> list[tuple[str, bytes, float | None]]:
    """(text, bytes, probability at the position) of each token to force."""
    alts = [a for a in entry.get("top_logprobs") or [] if isinstance(a, dict)]
    listed = {prefill.entry_bytes(a): _prob(a.get("logprob")) for a in alts}
    if token is not None:
        if not isinstance(token, str) or not token:
            raise InvalidParameterError(
                f"token={token!r} is not allowed: give the token's text (a non-empty string), or None for each "
                "alternative listed at that position.",
                param="token",
                value=token,
            )
        raw = token.encode("utf-8")
        return [(token, raw, listed.get(raw))]
    sampled = prefill.entry_bytes(entry)
    out: list[tuple[str, bytes, float | None]] = []
    for a in sorted(alts, key=lambda a: -(a.get("logprob") or -math.inf)):
        raw = prefill.entry_bytes(a)
        if raw != sampled and raw not in {r for _, r, _ in out}:
            out.append((_texts([a])[0], raw, listed[raw]))
    if not out:
        raise InvalidParameterError(
            "No alternatives are listed at that position besides the sampled token: ask with top_logprobs=5 (or "
            "more), or give the token to force with token=.",
            param="token",
            value=token,
        )
    return out


def branch(
    response: Response,
    at: int,
    token: str | None = None,
    n: int = 1,
    *,
    dialect: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    api_key: str | None = None,
    **params: Any,
) -> Branches:
    """Continue ``response``'s answer as if ``token`` had been sampled at answer position ``at`` (see the module
    docstring); ``params`` override the original request's (``max_tokens=20``, ``temperature=0``…). The key is
    the session's for the answer's server (the request kept none): give ``api_key=`` if the answer used its own."""
    entries = response.logprobs
    if not entries:
        raise InvalidParameterError(
            "This answer has no token logprobs, so there are no positions to branch at: ask with logprobs=True "
            "(and top_logprobs=5 for the alternatives).",
            param="at",
            value=at,
        )
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise InvalidParameterError(
            f"n={n!r} is not allowed: give the number of continuations per forced token, 1 to {MAX_N}.",
            param="n",
            value=n,
        )
    if dialect is not None:
        prefill.check_dialect(dialect)
    position = _position(at, len(entries))
    forced = _forced(entries[position], token)
    prefixes = [prefill.prefix_text(entries, position, raw) for _, raw, _ in forced]  # all checked before sending
    seed = params.get("seed", response.request.get("seed"))
    branches = []
    for (text, raw, prob), prefix in zip(forced, prefixes, strict=True):
        for i in range(n):
            call = dict(params)
            if n > 1 and isinstance(seed, int) and not isinstance(seed, bool):
                call["seed"] = seed + i
            reply = prefill.send(
                response, prefix, dialect=dialect, headers=headers, timeout=timeout, api_key=api_key, params=call
            )
            branches.append(Branch(position, text, raw, prob, prefix, reply))
    return Branches(response, position, branches)
