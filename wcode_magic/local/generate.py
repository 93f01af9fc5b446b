"""Generation: the model and the sampling pipeline turned into a stream of reasoning and answer tokens.

Pure (no I/O): the server asks a :class:`Generation` for tokens one at a time, so the first ones can be sent before
the last ones exist.

Choices a student may notice:

- The answer continues from the last two in-vocabulary words of the last user message, so it relates to the prompt.
- A trailing assistant message (a prefill) is continued exactly: its tokens are taken as already generated (the
  context, the history the penalties see, the count before a paragraph break may end the answer), so the
  distribution after a prefill of the model's own first k tokens is the one it had at position k. A prefilled
  answer does not think again.
- ``max_tokens`` bounds the whole completion, reasoning included, as on OpenRouter, OpenAI and DeepSeek
  (``completion_tokens = reasoning_tokens + answer tokens <= max_tokens``). Reasoning gets the smaller of its own
  budget and ``max_tokens``; the answer gets what is left. When the thinking used it all, the answer is empty and
  ``finish_reason`` is ``"length"``: what a real reasoning model does with a small ``max_tokens``.
- A paragraph break ends the answer (like an end-of-text token; not sent). It is forbidden for the first
  :data:`MIN_ANSWER_TOKENS` tokens (or all of them, when fewer are left) so that an answer with room is never
  empty, and it is an ordinary token with ``ignore_eos``.
- Reasoning is the same model started from "Let me think about" plus the prompt's last words; it stops at the
  first sentence end after three quarters of its budget, or at the budget.
- Stop strings are matched on the text; tokens that might begin a stop string are held back until it is clear,
  and the stop string itself is never sent. Usage counts the tokens actually sent.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import MAX_TOP_LOGPROBS
from .ngram import NgramModel, default_model
from .sampling import Distribution, History, SamplingParams, shape, top_entries

MIN_ANSWER_TOKENS = 8
REASONING_OPENING = ("Let", " me", " think", " about")
SENTENCE_ENDS = frozenset({".", "?", "!"})
_FILLER_WORDS = frozenset(
    f" {w}"
    for w in (
        "about", "and", "are", "can", "could", "do", "does", "how", "i", "is", "me", "of", "please", "tell", "to",
        "what", "when", "where", "which", "who", "why", "will", "would", "you", "your",
    )
)  # fmt: skip
_TOPIC_WORDS = 3


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides the generated tokens (the same request and seed give the same tokens)."""

    prompt: str
    params: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int = 256  # the whole completion: reasoning and answer
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    seed: int | None = None
    reasoning_budget: int = 0  # reasoning's own limit; it also stops at max_tokens
    top_logprobs: int | None = None
    prefill: str = ""  # the answer begun (a trailing assistant message): the answer continues it exactly


class Token:
    """One generated token: its text as sent, its id, its logprob and (if asked) the best alternatives."""

    __slots__ = ("id", "logprob", "text", "top")

    def __init__(self, text: str, token_id: int, logprob: float, top: tuple[list[int], list[float]] | None) -> None:
        self.text = text
        self.id = token_id
        self.logprob = logprob
        self.top = top


@functools.lru_cache(maxsize=512)
def _shared_distribution(
    model: NgramModel, context: tuple[int, int], params: SamplingParams, banned: int | None
) -> Distribution:
    """Distributions that depend only on the context are shared across steps and requests.

    Bounded at 512 (each holds up to two vocabulary-sized vectors, ~40 KB): a long stream visits thousands of
    contexts, so this helps the frequent ones without letting a notebook's server grow by hundreds of MB.
    """
    return shape(model.next_logprobs(context), params, banned=banned)


@functools.lru_cache(maxsize=16384)
def _model_top(model: NgramModel, context: tuple[int, int]) -> tuple[list[int], list[float]]:
    """The model's 20 best next tokens and their logprobs; small, so all contexts of a long stream fit."""
    probs = model.next_probs(context)
    ids, _ = top_entries(probs, MAX_TOP_LOGPROBS)
    ids_list = ids.tolist()
    return ids_list, [math.log(p) for p in probs[ids].tolist()]


def reasoning_opening(model: NgramModel, prompt: str) -> list[int]:
    """The opening of every reasoning: "Let me think about" plus up to three topic words of the prompt.

    Leading question words are dropped ("Why is the sky blue" gives "the sky blue"); with no known word it is
    "this.". The model then continues from the last two tokens, so the thoughts start on the prompt's topic.
    """
    words = model.word_ids(prompt)
    topic = words[-_TOPIC_WORDS:]
    while topic and model.vocab[topic[0]].lower() in _FILLER_WORDS:
        topic = topic[1:]
    tail = topic or [model.index[" this"], model.index["."]]
    return [model.index[t] for t in REASONING_OPENING] + tail


class Abandoned(Exception):
    """Nobody is waiting for this answer any more (the client left); ``args[0]`` is the tokens drawn by then."""


class Generation:
    """The token streams of one request: :meth:`reasoning` first (if any), then :meth:`answer`.

    Both share ``max_tokens``: the answer gets what the reasoning left. After :meth:`answer` is exhausted,
    ``finish_reason`` is ``"stop"`` or ``"length"``.
    """

    def __init__(self, request: GenerationRequest, model: NgramModel | None = None) -> None:
        self.request = request
        self.model = model or default_model()
        self.rng = np.random.Generator(np.random.PCG64(request.seed))
        self.prompt_ids = self.model.word_ids(request.prompt)
        self._neutral = request.params.is_neutral
        self.finish_reason: str | None = None
        self.reasoning_used = 0
        self.drawn = 0  # tokens drawn so far, reasoning and answer
        # set from the server's loop when the client has gone: the worker thread stops at the next token
        self.abandoned = threading.Event()

    def _next(self, context: tuple[int, int], history: History, banned: int | None) -> Token:
        """Draw the next token. Unmodified sampling walks the model directly (no vector: fast streaming)."""
        if self.abandoned.is_set():
            raise Abandoned(self.drawn)
        self.drawn += 1
        params = self.request.params
        if self._neutral and banned is None:
            return self._next_neutral(context)
        if params.uses_history:
            distribution = shape(self.model.next_logprobs(context), params, history, banned)
        else:
            distribution = _shared_distribution(self.model, context, params, banned)
        token_id = distribution.draw(self.rng)
        if params.uses_history:
            history.add(token_id)
        n = self.request.top_logprobs
        top = distribution.top(n) if n else None
        return Token(self.model.vocab[token_id], token_id, float(distribution.logprobs[token_id]), top)

    def _next_neutral(self, context: tuple[int, int]) -> Token:
        model = self.model
        token_id = model.sample(context, self.rng.random())
        n = self.request.top_logprobs
        top = None
        if n:
            top = _model_top(model, context)
            if n < MAX_TOP_LOGPROBS:
                top = (top[0][:n], top[1][:n])
        return Token(model.vocab[token_id], token_id, math.log(model.prob(context, token_id)), top)

    def reasoning(self) -> Iterator[Token]:
        """Reasoning tokens: the fixed opening (logprob 0: it is not sampled), then sampled thoughts.

        At most the reasoning budget and at most ``max_tokens``; :attr:`reasoning_used` counts them.
        """
        budget = min(self.request.reasoning_budget, self.request.max_tokens)
        opening = reasoning_opening(self.model, self.request.prompt)[:budget]
        for token_id in opening:
            self.reasoning_used += 1
            yield Token(self.model.vocab[token_id], token_id, 0.0, ([token_id], [0.0]))
        history = History(self.model.size, self.prompt_ids + opening)
        paragraph = self.model.paragraph_id
        context: tuple[int, int] = (paragraph, paragraph, *opening)[-2:]  # type: ignore[assignment]
        enough = (3 * budget + 3) // 4
        for count in range(len(opening) + 1, budget + 1):
            token = self._next(context, history, None)
            self.reasoning_used += 1
            yield token
            context = (context[1], token.id)
            if count >= enough and token.text in SENTENCE_ENDS:
                return

    def answer(self) -> Iterator[Token]:
        """Answer tokens, ending at a paragraph break, a stop string or ``max_tokens`` (reasoning included).

        Call it after :meth:`reasoning` is exhausted: the tokens left are read when the answer starts.
        """
        return with_stops(self._sampled(), self)

    def _sampled(self) -> Iterator[Token]:
        """The answer as sampled, before stop strings: to a paragraph break or ``max_tokens``."""
        request, model = self.request, self.model
        context = model.prompt_context(request.prompt)
        prefilled = model.token_ids(request.prefill)
        for token_id in prefilled:  # the answer begun: as if these had been generated (context, history, count)
            context = (context[1], token_id)
        history = History(model.size, self.prompt_ids + prefilled)
        for count in range(request.max_tokens - self.reasoning_used):
            early = not request.ignore_eos and count + len(prefilled) < MIN_ANSWER_TOKENS
            token = self._next(context, history, model.paragraph_id if early else None)
            if token.id == model.paragraph_id and not request.ignore_eos:
                self.finish_reason = "stop"
                return
            context = (context[1], token.id)
            yield token
        self.finish_reason = "length"


def with_stops(tokens: Iterator[Token], generation: Generation) -> Iterator[Token]:
    """``tokens`` with the request's stop strings applied, for any way of making them (sampled, or the JSON mode's
    writer): held back while they may begin a stop string, cut where one is found, which ends the answer with
    finish_reason ``stop``; else the producer's own ending stands."""
    if not generation.request.stop:
        yield from tokens
        return
    stops = StopMatcher(generation.request.stop)
    for token in tokens:
        ready, stopped = stops.push(token)
        yield from ready
        if stopped:
            generation.finish_reason = "stop"
            return
    yield from stops.flush()


class StopMatcher:
    """Finds stop strings across token boundaries, holding back tokens that may be the start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self._pending: list[Token] = []
        self._tail = ""
        self._tail_size = max(len(s) for s in stops) - 1

    def push(self, token: Token) -> tuple[list[Token], bool]:
        """Add one token; return the tokens safe to send and whether a stop string was found."""
        self._pending.append(token)
        pending = "".join(t.text for t in self._pending)
        window = self._tail + pending
        hits = [i for i in (window.find(s) for s in self.stops) if i >= 0]
        if hits:
            return self._before(max(min(hits) - len(self._tail), 0), split=True), True
        held = self._held_length(window)
        ready = self._before(len(pending) - held, split=False)
        self._tail = (self._tail + "".join(t.text for t in ready))[-self._tail_size :] if self._tail_size else ""
        return ready, False

    def flush(self) -> list[Token]:
        """Tokens still held back when generation ends without a stop string."""
        ready, self._pending = self._pending, []
        return ready

    def _held_length(self, window: str) -> int:
        """Length of the longest end of ``window`` that is the beginning of a stop string."""
        for size in range(min(self._tail_size, len(window)), 0, -1):
            end = window[-size:]
            if any(s.startswith(end) for s in self.stops):
                return size
        return 0

    def _before(self, cut: int, *, split: bool) -> list[Token]:
        """Pop the pending tokens before character ``cut``; one crossing it is shortened if ``split``, else kept."""
        ready: list[Token] = []
        position = 0
        while self._pending and position < cut:
            token = self._pending[0]
            if position + len(token.text) > cut:
                if not split:
                    break
                token.text = token.text[: cut - position]
            self._pending.pop(0)
            position += len(token.text)
            ready.append(token)
        return ready
