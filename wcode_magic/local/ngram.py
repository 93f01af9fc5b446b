"""A small, honest word-level trigram language model trained on the bundled corpus.

Why a trigram model: it trains in a few tens of milliseconds, its probabilities are exact and easy to explain in a
classroom, and three words of context are enough for sentences that read naturally for a few words at a time.
Every sampling parameter then has its real effect and every logprob is a real probability.

Tokens are GPT-like: a word or a punctuation mark together with its leading space (``" the"``, ``","``), a line
break ``"\\n"`` or a paragraph break ``"\\n\\n"``, so that joining tokens reproduces the text exactly.

Smoothing is interpolated Kneser-Ney (Chen and Goodman 1998) with one absolute discount per order:

    p3(w | u v) = max(c(u v w) - D3, 0) / c(u v .)   + D3 N1+(u v .) / c(u v .)    * p2(w | v)
    p2(w | v)   = max(N1+(. v w) - D2, 0) / N1+(. v .) + D2 N1+(v .) / N1+(. v .) * p1(w)
    p1(w)       = max(N1+(. w) - D1, 0) / N1+(. .)     + D1 N1+(.) / N1+(. .)      / V

The lower orders use continuation counts (how many distinct words precede), which is what makes Kneser-Ney good
at rare words. An unseen context backs off to the next order with weight one, so every token always has a
strictly positive probability.

The discounts of the two upper orders are fixed and small (0.2 and 0.4) on purpose. With 12k training tokens most
trigrams are seen once, so the textbook estimate ``D = n1 / (n1 + 2 n2)`` comes out near 0.9 and hands nine tenths
of the mass to the backoff: samples become word salad. Small discounts trade held-out perplexity for readable
samples, the right trade for a teaching model. The unigram discount keeps the textbook estimate.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from dataclasses import dataclass
from importlib import resources

import numpy as np

TOKEN_PATTERN = re.compile(r"\n\n|\n| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|\s")
PARAGRAPH = "\n\n"
_WORD = re.compile(r" ?[A-Za-z0-9]+")
_CONTEXT_CACHE_SIZE = 512
TRIGRAM_DISCOUNT = 0.2
BIGRAM_DISCOUNT = 0.4


def tokenize(text: str) -> list[str]:
    """Split text into GPT-like tokens; ``"".join(tokenize(t)) == t`` for every string."""
    return TOKEN_PATTERN.findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (in or out of the vocabulary): what usage.prompt_tokens reports."""
    return sum(1 for _ in TOKEN_PATTERN.finditer(text))


@dataclass(frozen=True)
class _Sparse:
    """The discounted counts of one context: which next tokens were seen, their share, and the backoff weight.

    The numpy arrays serve the dense distribution; the plain-Python copies (cumulative shares, a dict) serve
    :meth:`NgramModel.sample` and :meth:`NgramModel.prob`, where a few list operations beat numpy's call overhead.
    """

    ids: np.ndarray
    values: np.ndarray
    backoff: float
    id_list: list[int]
    cumulative: list[float]
    lookup: dict[int, float]


def _estimated_discount(counts: np.ndarray) -> float:
    """Textbook Kneser-Ney discount from the count-of-counts, clamped to a sane range."""
    n1 = int(np.count_nonzero(counts == 1))
    n2 = int(np.count_nonzero(counts == 2))
    if n1 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.95)


def _group(keys: np.ndarray, next_ids: np.ndarray, counts: np.ndarray, discount: float) -> dict[int, _Sparse]:
    """Group sorted (context key, next token, count) rows into one discounted sparse row per context."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    groups: dict[int, _Sparse] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        row = counts[start:end].astype(np.float64)
        total = row.sum()
        ids = next_ids[start:end].copy()
        values = np.maximum(row - discount, 0.0) / total
        groups[int(keys[start])] = _Sparse(
            ids=ids,
            values=values,
            backoff=discount * (end - start) / total,
            id_list=ids.tolist(),
            cumulative=np.cumsum(values).tolist(),
            lookup=dict(zip(ids.tolist(), values.tolist(), strict=True)),
        )
    return groups


class NgramModel:
    """Interpolated Kneser-Ney trigram model over GPT-like tokens; a context is a pair of token ids.

    - ``next_logprobs(context)``: the full next-token distribution as natural-log probabilities (a read-only numpy
      vector over the vocabulary, cached per context because generation revisits common contexts a lot).
    - ``next_probs(context)``: the same as probabilities (not cached).
    - ``sample(context, u)`` and ``prob(context, token_id)``: one draw and one probability without building the
      vector, by walking the interpolation levels. This is the fast path for unmodified sampling; it computes
      exactly what the vector holds (the same floating-point operations in the same order).
    """

    def __init__(self, text: str) -> None:
        tokens = [PARAGRAPH, PARAGRAPH, *tokenize(text)]
        self.vocab: tuple[str, ...] = tuple(dict.fromkeys(tokens))
        self.index: dict[str, int] = {token: i for i, token in enumerate(self.vocab)}
        self.paragraph_id = self.index[PARAGRAPH]
        ids = np.fromiter((self.index[t] for t in tokens), dtype=np.int64, count=len(tokens))
        self._train(ids)
        self.start_context = self._most_common_paragraph_start(ids)
        self.next_logprobs = functools.lru_cache(maxsize=_CONTEXT_CACHE_SIZE)(self._compute_logprobs)

    @property
    def size(self) -> int:
        """Vocabulary size."""
        return len(self.vocab)

    def _train(self, ids: np.ndarray) -> None:
        size = len(self.vocab)
        trigram_keys, trigram_counts = np.unique((ids[:-2] * size + ids[1:-1]) * size + ids[2:], return_counts=True)
        self._trigrams = _group(trigram_keys // size, trigram_keys % size, trigram_counts, TRIGRAM_DISCOUNT)
        bigram_keys, continuation = np.unique(trigram_keys % (size * size), return_counts=True)
        self._bigrams = _group(bigram_keys // size, bigram_keys % size, continuation, BIGRAM_DISCOUNT)
        unigram = np.bincount(bigram_keys % size, minlength=size).astype(np.float64)
        d1 = _estimated_discount(unigram[unigram > 0])
        total = unigram.sum()
        self._unigram = np.maximum(unigram - d1, 0.0) / total + d1 * np.count_nonzero(unigram) / total / size
        self._unigram_list = self._unigram.tolist()
        self._unigram_cumulative = np.cumsum(self._unigram).tolist()

    def _most_common_paragraph_start(self, ids: np.ndarray) -> tuple[int, int]:
        """The context that most often starts a paragraph: where an answer without a usable prompt begins."""
        before = ids[:-1][ids[1:] == self.paragraph_id]
        return int(np.bincount(before).argmax()), self.paragraph_id

    def next_probs(self, context: tuple[int, int]) -> np.ndarray:
        """The next-token distribution after ``context`` as a new numpy vector of probabilities."""
        u, v = context
        trigram = self._trigrams.get(u * self.size + v)
        bigram = self._bigrams.get(v)
        weight = trigram.backoff if trigram is not None else 1.0
        if bigram is not None:
            probs = self._unigram * (weight * bigram.backoff)
            probs[bigram.ids] += weight * bigram.values
        else:
            probs = self._unigram * weight
        if trigram is not None:
            probs[trigram.ids] += trigram.values
        return probs

    def _compute_logprobs(self, context: tuple[int, int]) -> np.ndarray:
        logprobs = np.log(self.next_probs(context))
        logprobs.flags.writeable = False
        return logprobs

    def prob(self, context: tuple[int, int], token_id: int) -> float:
        """Probability of one next token, equal to ``next_probs(context)[token_id]``."""
        u, v = context
        trigram = self._trigrams.get(u * self.size + v)
        bigram = self._bigrams.get(v)
        weight = trigram.backoff if trigram is not None else 1.0
        if bigram is not None:
            p = self._unigram_list[token_id] * (weight * bigram.backoff)
            p += weight * bigram.lookup.get(token_id, 0.0)
        else:
            p = self._unigram_list[token_id] * weight
        if trigram is not None:
            p += trigram.lookup.get(token_id, 0.0)
        return p

    def sample(self, context: tuple[int, int], u: float) -> int:
        """The token at quantile ``u`` (in [0, 1)) of the next-token distribution, level by level.

        The interpolated distribution is a mixture: with probability ``1 - backoff`` a seen trigram (in proportion
        to its discounted count), else the bigram level, else the unigram level. Drawing in that order is an
        exact sample without the vector, which keeps plain streaming fast.
        """
        first, second = context
        for level in (self._trigrams.get(first * self.size + second), self._bigrams.get(second)):
            if level is None:
                continue
            mass = level.cumulative[-1]
            if u < mass:
                return level.id_list[min(bisect_right(level.cumulative, u), len(level.id_list) - 1)]
            u = min((u - mass) / level.backoff, 1.0)
        cumulative = self._unigram_cumulative
        return min(bisect_right(cumulative, u * cumulative[-1]), self.size - 1)

    def word_ids(self, text: str) -> list[int]:
        """In-vocabulary word tokens of free text (punctuation dropped), matched with a leading space.

        Why: prompts are typed freely ("Why is the SKY blue?") while the corpus has " sky"; trying the exact word,
        then lower case, then capitalised finds the token the model knows.
        """
        found = []
        for match in _WORD.finditer(text):
            word = match.group().strip()
            for candidate in (word, word.lower(), word.capitalize()):
                token_id = self.index.get(" " + candidate)
                if token_id is not None:
                    found.append(token_id)
                    break
        return found

    def token_ids(self, text: str) -> list[int]:
        """The tokens of ``text`` the model knows, in order: exact, else the word in lower case or capitalised
        (with its leading space); unknown ones are left out. The model's own output maps back token for token."""
        found = []
        for token in tokenize(text):
            space = " " if token.startswith(" ") else ""
            word = token[len(space) :]
            for candidate in (token, space + word.lower(), space + word.capitalize()):
                token_id = self.index.get(candidate)
                if token_id is not None:
                    found.append(token_id)
                    break
        return found

    def prompt_context(self, text: str) -> tuple[int, int]:
        """Context for an answer: the last two in-vocabulary words of the prompt, or a paragraph start."""
        words = self.word_ids(text)
        if len(words) >= 2:
            return words[-2], words[-1]
        if words:
            return self.paragraph_id, words[-1]
        return self.start_context


@functools.cache
def default_model() -> NgramModel:
    """The model trained on the bundled corpus, trained once per process on first use."""
    text = resources.files(__package__).joinpath("corpus.txt").read_text(encoding="utf-8")
    return NgramModel(text)
