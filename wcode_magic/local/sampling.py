"""The sampling pipeline: from the model's next-token log-probabilities to one chosen token.

Order of the steps (the order real servers use, so the parameters interact the way students will meet them):

1. ``logit_bias``: add the bias to the logit of each listed token (OpenAI semantics, -100..100).
2. ``repetition_penalty``: HF/CTRL style, for tokens seen in the prompt or generated so far, divide a positive logit
   by the penalty and multiply a negative one by it.
3. ``frequency_penalty`` / ``presence_penalty``: OpenAI formula over generated tokens,
   ``logit - count * frequency - (count > 0) * presence``.
4. ``temperature``: ``log_softmax(logits / T)``; ``T = 0`` means greedy argmax.
5. Truncation filters, each on the renormalised survivors of the previous one (as HF's warpers chain):
   ``top_k`` (0 = off), ``top_p``, ``min_p`` (relative to the top probability), ``top_a`` (drop ``p < a * p_max**2``).
6. Draw one token with the request's ``numpy.random.Generator``.

The logits are the model's log-probabilities (all <= 0 before the bias). That choice matters for the
repetition penalty, which is not shift invariant: on log-probabilities a penalty above 1 always makes a seen token
less likely, which is what the parameter promises.

The distribution reported as logprobs is the one after steps 1-4 and before the truncation of step 5: the model's
true probabilities under the bias, penalties and temperature, not the renormalised truncated support (whose
values would change when a student moves top_p and hide what was cut). With temperature 0 the temperature-1
distribution is reported, since a greedy "distribution" would be all zeros and minus infinity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_NUCLEUS_THRESHOLD = 1e-3


@dataclass(frozen=True)
class SamplingParams:
    """Validated sampling parameters; defaults are the documented neutral values (the seed pages' defaults)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    top_a: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()

    @property
    def is_neutral(self) -> bool:
        """Whether sampling is straight from the model's distribution (the fast path in :mod:`.generate`)."""
        return self == _NEUTRAL

    @property
    def uses_history(self) -> bool:
        """Whether the distribution depends on earlier tokens, beyond the model's context (no caching then)."""
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0


_NEUTRAL = SamplingParams()


def apply_logit_bias(logits: np.ndarray, bias: tuple[tuple[int, float], ...]) -> np.ndarray:
    """Add each (token id, bias) to a copy of the logits."""
    out = logits.copy()
    for token_id, value in bias:
        out[token_id] += value
    return out


def apply_repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """HF/CTRL repetition penalty on the tokens marked in the boolean mask ``seen``.

    A penalty of 0 (allowed by the documented range) would divide by zero; it is treated as a tiny positive
    number, i.e. the strongest possible encouragement to repeat.
    """
    divisor = max(penalty, 1e-9)
    penalised = np.where(logits > 0, logits / divisor, logits * penalty)
    return np.where(seen, penalised, logits)


def apply_frequency_presence(logits: np.ndarray, counts: np.ndarray, frequency: float, presence: float) -> np.ndarray:
    """OpenAI's penalties: subtract ``count * frequency + (count > 0) * presence`` from each logit."""
    return logits - counts * frequency - (counts > 0) * presence


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Normalise logits into natural-log probabilities (stable for large values and minus infinity)."""
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Log-probabilities at a temperature; temperature 0 reports the temperature-1 distribution (see module doc)."""
    if temperature in (0.0, 1.0):
        return log_softmax(logits)
    return log_softmax(logits / temperature)


def truncate(
    probs: np.ndarray, *, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, top_a: float = 0.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """Apply top_k, top_p, min_p and top_a in turn; return (kept token ids or None for all, their weights).

    The weights are not renormalised (sampling uses a cumulative sum, which does not need it). At least one token
    always survives: every filter keeps the most likely one.
    """
    ids: np.ndarray | None = None
    weights = probs
    if 0 < top_k < len(weights):
        ids = np.sort(np.argpartition(weights, -top_k)[-top_k:])
        weights = weights[ids]
    if top_p < 1.0:
        ids, weights = _nucleus(ids, weights, top_p)
    if min_p > 0.0:
        ids, weights = _keep(ids, weights, weights >= min_p * weights.max())
    if top_a > 0.0:
        total = weights.sum()
        ids, weights = _keep(ids, weights, weights / total >= top_a * (weights.max() / total) ** 2)
    return ids, weights


def _nucleus(ids: np.ndarray | None, weights: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of most likely tokens holding at least ``top_p`` of the mass.

    Sorting the whole vocabulary is the slow part, so only the tokens above a small threshold are sorted when they
    already hold more than ``top_p``: then the nucleus lies among them (everything below comes later in sorted
    order), and the result is the same as sorting everything.
    """
    total = weights.sum()
    candidates = np.flatnonzero(weights >= weights.max() * _NUCLEUS_THRESHOLD)
    if weights[candidates].sum() <= top_p * total:
        candidates = np.arange(len(weights))
    order = candidates[np.argsort(-weights[candidates], kind="stable")]
    cumulative = np.cumsum(weights[order])
    keep = min(int(np.searchsorted(cumulative, top_p * total, side="left")) + 1, len(order))
    kept = np.sort(order[:keep])
    return (kept if ids is None else ids[kept]), weights[kept]


def _keep(ids: np.ndarray | None, weights: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Restrict (ids, weights) to the positions where ``mask`` holds."""
    kept = np.flatnonzero(mask)
    return (kept if ids is None else ids[kept]), weights[kept]


def top_entries(logprobs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` most likely token ids and their logprobs, best first (ties broken by lower id, like argmax)."""
    n = min(n, len(logprobs))
    candidates = np.sort(np.argpartition(-logprobs, n - 1)[:n]) if n < len(logprobs) else np.arange(n)
    order = np.argsort(-logprobs[candidates], kind="stable")
    ids = candidates[order]
    return ids, logprobs[ids]


@dataclass
class Distribution:
    """One step's prepared distribution: what is reported (logprobs) and what is sampled from (cdf over support)."""

    logprobs: np.ndarray
    greedy: int
    support: np.ndarray | None
    cdf: np.ndarray
    _tops: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict, repr=False)

    def draw(self, rng: np.random.Generator) -> int:
        """Sample a token id by inverting the cdf; a single candidate (e.g. greedy) uses no random number."""
        if len(self.cdf) == 1:
            return int(self.support[0]) if self.support is not None else 0
        position = int(self.cdf.searchsorted(rng.random() * self.cdf[-1], side="right"))
        position = min(position, len(self.cdf) - 1)
        return int(self.support[position]) if self.support is not None else position

    def top(self, n: int) -> tuple[list[int], list[float]]:
        """The ``n`` (<= 20) best alternatives as Python lists, computed once per distribution and ``n``."""
        top = self._tops.get(n)
        if top is None:
            ids, values = top_entries(self.logprobs, n)
            top = self._tops[n] = (ids.tolist(), values.tolist())
        return top


def prepare(logits: np.ndarray, params: SamplingParams, *, normalised: bool = False) -> Distribution:
    """Temperature and truncation (steps 4-5) on already biased and penalised logits.

    ``normalised`` says the logits are already log-probabilities at temperature 1, which saves a log-softmax on
    the common path (no bias, no penalties).
    """
    temperature = params.temperature
    reuse = normalised and temperature in (0.0, 1.0)
    logprobs = logits if reuse else apply_temperature(logits, temperature)
    greedy = int(logprobs.argmax())
    if temperature == 0.0:
        return Distribution(logprobs, greedy, np.array([greedy]), np.ones(1))
    support, weights = truncate(
        np.exp(logprobs), top_k=params.top_k, top_p=params.top_p, min_p=params.min_p, top_a=params.top_a
    )
    return Distribution(logprobs, greedy, support, np.cumsum(weights))


def shape(
    base_logprobs: np.ndarray, params: SamplingParams, history: History | None = None, banned: int | None = None
) -> Distribution:
    """Steps 1-5 on the model's log-probabilities; ``banned`` forbids one token (e.g. a too early end).

    ``history`` is needed only when ``params.uses_history``; without it the result depends on the context alone,
    so callers may cache it.
    """
    logits = base_logprobs
    if params.logit_bias:
        logits = apply_logit_bias(logits, params.logit_bias)
    if history is not None and params.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, history.seen, params.repetition_penalty)
    if history is not None and (params.frequency_penalty != 0.0 or params.presence_penalty != 0.0):
        logits = apply_frequency_presence(logits, history.counts, params.frequency_penalty, params.presence_penalty)
    if banned is not None:
        logits = logits.copy() if logits is base_logprobs else logits
        logits[banned] = -np.inf
    return prepare(logits, params, normalised=logits is base_logprobs)


class History:
    """What the penalties look at: counts of generated tokens and the set of tokens seen (prompt or generated)."""

    def __init__(self, vocab_size: int, prompt_ids: list[int]) -> None:
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.seen = np.zeros(vocab_size, dtype=bool)
        self.seen[prompt_ids] = True

    def add(self, token_id: int) -> None:
        """Record one generated token."""
        self.counts[token_id] += 1
        self.seen[token_id] = True
