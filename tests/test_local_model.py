"""The bundled local model's pure parts: tokenizer, trigram model, sampling pipeline, generation, fault grammar.

These call the functions directly; tests/test_local_server.py checks the same behaviour over real HTTP.
"""

from __future__ import annotations

import math
import time
from importlib import resources

import numpy as np
import pytest

from wcode_magic.local import faults as faults_module
from wcode_magic.local.generate import MIN_ANSWER_TOKENS, Generation, GenerationRequest, StopMatcher, Token
from wcode_magic.local.ngram import NgramModel, count_tokens, default_model, tokenize
from wcode_magic.local.sampling import (
    History,
    SamplingParams,
    apply_frequency_presence,
    apply_logit_bias,
    apply_repetition_penalty,
    apply_temperature,
    log_softmax,
    shape,
    top_entries,
    truncate,
)


@pytest.fixture(scope="module")
def model() -> NgramModel:
    return default_model()


def _corpus() -> str:
    return resources.files("wcode_magic.local").joinpath("corpus.txt").read_text(encoding="utf-8")


# --- tokenizer and model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Hello,  world!\n\nNew  paragraph.\n- a list", "tabs\tand ünïcödé 你好 🙂", ""])
def test_tokens_join_back_to_the_text(text):
    assert "".join(tokenize(text)) == text
    assert count_tokens(text) == len(tokenize(text))


def test_tokens_are_gpt_like():
    assert tokenize("The sky, blue.\n\nYes") == ["The", " sky", ",", " blue", ".", "\n\n", "Yes"]


def test_corpus_size_and_training_time():
    text = _corpus()
    assert 40_000 <= len(text.encode()) <= 80_000
    assert "".join(tokenize(text)) == text
    started = time.perf_counter()
    trained = NgramModel(text)
    assert time.perf_counter() - started < 1.0
    assert 1_000 <= trained.size <= 10_000


def test_distributions_are_normalised_and_positive(model):
    rng = np.random.default_rng(0)
    contexts = [model.start_context, model.prompt_context("the sky"), (0, 0)]
    contexts += [(int(a), int(b)) for a, b in rng.integers(model.size, size=(20, 2))]
    for context in contexts:
        probs = np.exp(model.next_logprobs(context))
        assert probs.min() > 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)


def test_trigram_context_matters(model):
    """After "the sky" the model must prefer what followed it in the corpus, unlike after "a sky"."""
    context = model.prompt_context("the sky")
    best = model.vocab[int(model.next_logprobs(context).argmax())]
    assert best in {" is", " turns", " away"}


def test_scalar_probability_equals_the_vector(model):
    rng = np.random.default_rng(1)
    for context in [model.prompt_context("bread and"), model.start_context, (5, 7)]:
        probs = model.next_probs(context)
        for token_id in [*rng.integers(model.size, size=10).tolist(), int(probs.argmax())]:
            assert model.prob(context, token_id) == probs[token_id]


def test_level_walk_sampling_matches_the_distribution(model):
    """model.sample draws level by level; the frequencies must match the vector (a chi-square style check)."""
    context = model.prompt_context("Why is the sky blue")
    probs = model.next_probs(context)
    draws = 20_000
    counts = np.bincount(
        [model.sample(context, u) for u in np.random.default_rng(2).random(draws)], minlength=model.size
    )
    top = np.argsort(-probs)[:5]
    expected = draws * probs[top]
    assert np.all(np.abs(counts[top] - expected) < 5 * np.sqrt(expected) + 5)


def test_prompt_context_uses_the_last_known_words(model):
    assert model.prompt_context("Tell me about the SKY!") == (model.index[" the"], model.index[" sky"])
    assert model.prompt_context("zzzz qqqq") == model.start_context


# --- sampling pipeline ------------------------------------------------------------------------------------------


def test_logit_bias_adds_to_the_listed_tokens():
    logits = np.log(np.array([0.5, 0.3, 0.2]))
    biased = apply_logit_bias(logits, ((0, -100.0), (2, 1.0)))
    assert biased[0] == pytest.approx(logits[0] - 100)
    assert biased[1] == logits[1]
    assert biased[2] == pytest.approx(logits[2] + 1)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = np.array([2.0, -1.0, -1.0])
    seen = np.array([True, True, False])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [1.0, -2.0, -1.0]


def test_frequency_and_presence_follow_openai_formula():
    logits = np.zeros(3)
    counts = np.array([0, 1, 3])
    assert apply_frequency_presence(logits, counts, 0.5, 1.0).tolist() == [0.0, -1.5, -2.5]


def test_temperature_sharpens_and_flattens():
    logprobs = np.log(np.array([0.6, 0.3, 0.1]))
    cold, hot = np.exp(apply_temperature(logprobs, 0.5)), np.exp(apply_temperature(logprobs, 2.0))
    assert cold[0] > 0.6 > hot[0]
    assert cold.sum() == pytest.approx(1) and hot.sum() == pytest.approx(1)
    assert np.allclose(apply_temperature(logprobs, 0.0), logprobs)  # greedy reports the T=1 distribution


def test_log_softmax_is_stable():
    out = log_softmax(np.array([1000.0, 1000.0, -np.inf]))
    assert out.tolist()[:2] == pytest.approx([math.log(0.5)] * 2)
    assert out[2] == -np.inf


PROBS = np.array([0.05, 0.4, 0.3, 0.15, 0.1])


@pytest.mark.parametrize(
    ("kwargs", "kept"),
    [
        ({}, None),
        ({"top_k": 2}, [1, 2]),
        ({"top_p": 0.7}, [1, 2]),
        ({"top_p": 0.71}, [1, 2, 3]),
        ({"top_p": 0.0}, [1]),
        ({"min_p": 0.3}, [1, 2, 3]),
        ({"top_a": 0.9}, [1, 2, 3]),  # threshold 0.9 * 0.4**2 = 0.144
        ({"top_k": 3, "top_p": 0.5}, [1, 2]),  # top_p on the renormalised top 3
    ],
)
def test_truncation_filters(kwargs, kept):
    ids, weights = truncate(PROBS, **kwargs)
    if kept is None:
        assert ids is None
        assert weights.tolist() == PROBS.tolist()
    else:
        assert ids.tolist() == kept
        assert weights.tolist() == PROBS[kept].tolist()


def test_top_entries_are_sorted_and_break_ties_by_id():
    ids, values = top_entries(np.log(np.array([0.2, 0.4, 0.2, 0.2])), 3)
    assert ids.tolist() == [1, 0, 2]
    assert values.tolist() == sorted(values.tolist(), reverse=True)


def test_greedy_and_top_k_one_pick_the_argmax(model):
    base = model.next_logprobs(model.start_context)
    rng = np.random.default_rng(3)
    for params in (SamplingParams(temperature=0.0), SamplingParams(top_k=1), SamplingParams(top_p=0.0)):
        assert shape(base, params).draw(rng) == int(base.argmax())


def test_banned_token_is_never_drawn(model):
    base = model.next_logprobs(model.start_context)
    best = int(base.argmax())
    distribution = shape(base, SamplingParams(temperature=0.0), banned=best)
    assert distribution.draw(np.random.default_rng(0)) != best
    assert distribution.logprobs[best] == -np.inf


def test_reported_logprobs_are_before_truncation(model):
    """top_k changes what may be drawn, not the probabilities reported for the tokens."""
    base = model.next_logprobs(model.start_context)
    assert np.array_equal(shape(base, SamplingParams(top_k=2)).logprobs, shape(base, SamplingParams()).logprobs)


def test_history_feeds_the_penalties(model):
    history = History(model.size, prompt_ids=[3])
    history.add(5)
    history.add(5)
    assert history.counts[5] == 2 and history.seen[3] and history.seen[5]
    base = model.next_logprobs(model.start_context)
    penalised = shape(base, SamplingParams(frequency_penalty=1.0), history).logprobs
    plain = shape(base, SamplingParams(frequency_penalty=1.0)).logprobs  # no history: nothing to penalise
    assert penalised[5] < plain[5]


# --- generation -------------------------------------------------------------------------------------------------


def _text(request: GenerationRequest) -> tuple[str, str]:
    generation = Generation(request)
    reasoning = "".join(t.text for t in generation.reasoning())
    return reasoning, "".join(t.text for t in generation.answer())


def test_same_seed_same_text_other_seed_other_text():
    request = GenerationRequest("Tell me about bread", seed=7, reasoning_budget=16)
    assert _text(request) == _text(request)
    assert _text(request) != _text(GenerationRequest("Tell me about bread", seed=8, reasoning_budget=16))


def test_answers_end_at_a_paragraph_but_never_too_early():
    for seed in range(20):
        generation = Generation(GenerationRequest("weather", seed=seed))
        tokens = list(generation.answer())
        assert "\n\n" not in "".join(t.text for t in tokens)
        assert len(tokens) >= 8
        assert generation.finish_reason in {"stop", "length"}


def test_ignore_eos_generates_exactly_max_tokens():
    generation = Generation(GenerationRequest("weather", seed=1, max_tokens=500, ignore_eos=True))
    assert len(list(generation.answer())) == 500
    assert generation.finish_reason == "length"


def test_reasoning_opens_with_the_prompt_topic_and_respects_its_budget():
    generation = Generation(GenerationRequest("Why is the sky blue?", seed=1, reasoning_budget=20))
    tokens = list(generation.reasoning())
    assert "".join(t.text for t in tokens).startswith("Let me think about the sky blue")
    assert 15 <= len(tokens) <= 20


@pytest.mark.parametrize(("budget", "max_tokens"), [(48, 5), (48, 48), (20, 24), (20, 200), (0, 10), (128, 1)])
def test_max_tokens_bounds_reasoning_and_answer_together(budget, max_tokens):
    request = GenerationRequest("Why is the sky blue?", seed=2, max_tokens=max_tokens, reasoning_budget=budget)
    generation = Generation(request)
    reasoning = list(generation.reasoning())
    answer = list(generation.answer())
    assert len(reasoning) == generation.reasoning_used <= min(budget, max_tokens)
    assert len(reasoning) + len(answer) <= max_tokens
    if len(reasoning) == max_tokens:  # all thought: nothing left to answer, cut by the length
        assert answer == [] and generation.finish_reason == "length"
    else:  # room left: the answer is not empty and does not end at a paragraph before MIN_ANSWER_TOKENS
        assert len(answer) >= min(MIN_ANSWER_TOKENS, max_tokens - len(reasoning))


def test_ignore_eos_answer_fills_what_the_reasoning_left():
    request = GenerationRequest("weather", seed=1, max_tokens=100, reasoning_budget=16, ignore_eos=True)
    generation = Generation(request)
    thought = len(list(generation.reasoning()))
    assert 0 < thought <= 16 and len(list(generation.answer())) == 100 - thought
    assert generation.finish_reason == "length"


def _tokens(*texts: str) -> list[Token]:
    return [Token(text, i, -1.0, None) for i, text in enumerate(texts)]


def test_stop_string_across_tokens_is_cut_and_held_back_text_is_released():
    matcher = StopMatcher(("cold week",))
    sent = []
    for token in _tokens("A", " single", " cold"):
        ready, stopped = matcher.push(token)
        assert not stopped
        sent += ready
    assert [t.text for t in sent] == ["A", " single"]  # " cold" might start the stop string
    ready, stopped = matcher.push(_tokens(" weekend")[0])
    assert stopped
    assert [t.text for t in sent + ready] == ["A", " single", " "]


def test_stop_matcher_flushes_held_tokens_when_no_stop_follows():
    matcher = StopMatcher(("cold week",))
    sent = [t for token in _tokens("so", " cold") for t in matcher.push(token)[0]]
    assert [t.text for t in sent + matcher.flush()] == ["so", " cold"]


# --- fault grammar ----------------------------------------------------------------------------------------------


def test_fault_header_grammar():
    parsed = faults_module.parse_faults(" status=429, retry_after=1.5,retry_after_date ,times=2, keepalive")
    assert (parsed.status, parsed.retry_after, parsed.retry_after_date, parsed.times) == (429, 1.5, True, 2)
    assert parsed.keepalive and parsed.affects_stream  # keep-alive comments go between stream events
    stream = faults_module.parse_faults("error_after=3,stall_after=1,stall_s=0.2,think_inline,delay_ms=5")
    assert (stream.error_after, stream.stall_after, stream.stall_s, stream.delay_ms) == (3, 1, 0.2, 5.0)
    assert stream.think_inline and stream.affects_stream


@pytest.mark.parametrize(
    "header", ["status=418", "bogus", "times=x", "keepalive=1", "drop_after=-1", "error_after=1.5"]
)
def test_fault_header_errors(header):
    with pytest.raises(faults_module.FaultSyntaxError):
        faults_module.parse_faults(header)


def test_times_ledger_counts_per_header_and_key():
    ledger = faults_module.TimesLedger()
    twice = faults_module.parse_faults("status=500,times=2")
    assert [ledger.should_fail(twice, "h", "a") for _ in range(3)] == [True, True, False]
    assert ledger.should_fail(twice, "h", "b")  # another key counts on its own
    always = faults_module.parse_faults("status=500")
    assert all(ledger.should_fail(always, "g", "") for _ in range(3))
