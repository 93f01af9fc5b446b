"""The bundled local model server over real HTTP on 127.0.0.1: shapes, sampling, logprobs, usage, faults, errors.

The SSE parsing here is deliberately independent of wcode_magic.core.stream, so a bug there cannot hide one here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from wcode_magic import local

MODELS = ["local/ngram", "local/ngram-thinking", "local/ngram-thinking-rc"]
PROMPT = "Tell me about the weather"


@pytest.fixture(scope="module")
def http(local_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_url, timeout=20) as client:
        yield client


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "local/ngram", "messages": [{"role": "user", "content": PROMPT}], **extra}


class Stream:
    """A parsed SSE response: data events (decoded), comment lines, raw lines, and whether [DONE] came."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.comments = [line for line in lines if line.startswith(":")]
        payloads = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        self.done = payloads[-1:] == ["[DONE]"]
        self.events = [json.loads(p) for p in payloads if p != "[DONE]"]

    def deltas(self, key: str) -> list[str]:
        return [c["delta"][key] for e in self.events for c in e["choices"] if c["delta"].get(key)]

    @property
    def content(self) -> str:
        return "".join(self.deltas("content"))

    @property
    def content_chunks(self) -> list[dict[str, Any]]:
        return [c for e in self.events for c in e["choices"] if c["delta"].get("content")]

    @property
    def finish_reason(self) -> str | None:
        reasons = [c["finish_reason"] for e in self.events for c in e["choices"] if c.get("finish_reason")]
        return reasons[-1] if reasons else None

    @property
    def usage(self) -> dict[str, Any] | None:
        usages = [e["usage"] for e in self.events if e.get("usage")]
        return usages[-1] if usages else None

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [entry for c in self.content_chunks for entry in c["logprobs"]["content"]]


def stream(http: httpx.Client, headers: dict[str, str] | None = None, **extra: Any) -> Stream:
    payload = body(stream=True, stream_options={"include_usage": True}, **extra)
    with http.stream("POST", "/chat/completions", json=payload, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return Stream(list(response.iter_lines()))


def whole(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = http.post("/chat/completions", json=body(**extra))
    assert response.status_code == 200, response.text
    return response.json()


# --- models, shapes, dialects -----------------------------------------------------------------------------------


def test_start_is_idempotent_and_returns_a_v1_url(local_url):
    assert local_url.endswith("/v1") and local_url.startswith("http://127.0.0.1:")
    assert local.start() == local_url == local.base_url()


def test_models_list(http):
    listed = http.get("/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == MODELS
    assert all(m["object"] == "model" for m in listed["data"])
    assert all(m["context_length"] == local.CONTEXT_TOKENS for m in listed["data"])


@pytest.mark.parametrize("model", MODELS)
def test_streamed_answer_shapes(http, model):
    result = stream(http, model=model, seed=1)
    assert result.done
    first = result.events[0]
    assert first["object"] == "chat.completion.chunk" and first["model"] == model
    assert {"id", "created", "choices"} <= first.keys()
    assert len({e["id"] for e in result.events}) == 1
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert all(len(c["delta"]["content"]) > 0 and "logprobs" in c for c in result.content_chunks)
    assert result.finish_reason in {"stop", "length"}
    reasoning_key = {"local/ngram": None, "local/ngram-thinking": "reasoning"}.get(model, "reasoning_content")
    if reasoning_key is None:
        assert not result.deltas("reasoning") and not result.deltas("reasoning_content")
        return
    reasoning = "".join(result.deltas(reasoning_key))
    assert reasoning.startswith("Let me think about")
    if model == "local/ngram-thinking":  # OpenRouter: the same text again in reasoning_details
        details = [
            d["text"] for e in result.events for c in e["choices"] for d in c["delta"].get("reasoning_details", [])
        ]
        assert "".join(details) == reasoning
        assert result.events[-1]["choices"] and result.events[-1]["usage"]
    else:  # Ark: usage alone in a final choices: [] chunk, "usage": null before
        assert result.events[-1]["choices"] == [] and result.events[-1]["usage"]
        assert all("usage" in e for e in result.events)
    # Reasoning comes before the answer.
    kinds = "".join(
        "r" if c["delta"].get(reasoning_key) else "c"
        for e in result.events
        for c in e["choices"]
        if c["delta"].get(reasoning_key) or c["delta"].get("content")
    )
    assert re.fullmatch("r+c+", kinds)


@pytest.mark.parametrize("model", MODELS)
def test_whole_answer_matches_the_stream(http, model):
    streamed = stream(http, model=model, seed=5)
    answer = whole(http, model=model, seed=5)
    assert answer["object"] == "chat.completion" and answer["model"] == model
    message = answer["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == streamed.content
    assert answer["choices"][0]["finish_reason"] == streamed.finish_reason
    assert answer["usage"] == streamed.usage
    if model == "local/ngram-thinking":
        assert message["reasoning"] == "".join(streamed.deltas("reasoning"))
        assert message["reasoning_details"][0]["text"] == message["reasoning"]
    elif model == "local/ngram-thinking-rc":
        assert message["reasoning_content"] == "".join(streamed.deltas("reasoning_content"))
    else:
        assert "reasoning" not in message and "reasoning_content" not in message


# --- sampling over HTTP -----------------------------------------------------------------------------------------


def test_seed_reproduces_and_another_seed_differs(http):
    first = stream(http, seed=42, temperature=1.2, max_tokens=60)
    assert stream(http, seed=42, temperature=1.2, max_tokens=60).content == first.content
    assert stream(http, seed=43, temperature=1.2, max_tokens=60).content != first.content


def test_temperature_zero_is_the_argmax_and_top_k_one_agrees(http):
    greedy = stream(http, temperature=0, max_tokens=40, logprobs=True, top_logprobs=3)
    for entry in greedy.entries:
        assert entry["token"] == entry["top_logprobs"][0]["token"]
        assert entry["logprob"] >= entry["top_logprobs"][1]["logprob"]
    assert stream(http, top_k=1, max_tokens=40, seed=9).content == greedy.content


def test_logit_bias_on_the_greedy_token_changes_the_answer(http):
    greedy = stream(http, temperature=0, max_tokens=20)
    first = greedy.content_chunks[0]["delta"]["content"]
    by_text = stream(http, temperature=0, max_tokens=20, logit_bias={first: -100})
    assert by_text.content_chunks[0]["delta"]["content"] != first
    token_id = next(i for i, m in enumerate(_vocab()) if m == first)
    by_id = stream(http, temperature=0, max_tokens=20, logit_bias={str(token_id): -100})
    assert by_id.content == by_text.content


def _vocab() -> tuple[str, ...]:
    from wcode_magic.local.ngram import default_model

    return default_model().vocab


def _most_repeated(text_chunks: list[str]) -> int:
    return Counter(text_chunks).most_common(1)[0][1]


@pytest.mark.parametrize(
    "penalty", [{"repetition_penalty": 1.6}, {"frequency_penalty": 1.5}, {"presence_penalty": 2.0}]
)
def test_penalties_reduce_repetition(http, penalty):
    """Greedy decoding of a trigram model loops; each penalty must break the loop measurably."""
    plain = stream(http, temperature=0, max_tokens=150, ignore_eos=True).deltas("content")
    penalised = stream(http, temperature=0, max_tokens=150, ignore_eos=True, **penalty).deltas("content")
    assert len(set(penalised)) > 1.3 * len(set(plain))
    assert _most_repeated(penalised) < _most_repeated(plain)


def test_stop_strings(http):
    greedy = stream(http, temperature=0, max_tokens=60).content
    cut = greedy.index(" ", 15)  # a stop string that spans a token boundary
    stop = greedy[cut - 3 : cut + 4]
    stopped = stream(http, temperature=0, max_tokens=60, stop=[stop, "zzz"])
    assert stopped.content == greedy[: greedy.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stream(http, temperature=0, max_tokens=60, stop=".").content == greedy[: greedy.index(".")]


def test_max_tokens_and_ignore_eos(http):
    result = stream(http, max_tokens=7, seed=3)
    assert len(result.content_chunks) == 7 and result.finish_reason == "length"
    long = stream(http, max_tokens=600, ignore_eos=True, seed=3)
    assert len(long.content_chunks) == 600


def test_typical_answers_are_readable_lengths(http):
    lengths = [len(stream(http, seed=s).content_chunks) for s in range(8)]
    assert 20 <= sorted(lengths)[len(lengths) // 2] <= 150


# --- logprobs and usage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"temperature": 0.7, "top_p": 0.9}, {"presence_penalty": 1.0}])
def test_logprobs_are_log_probabilities(http, params):
    result = stream(http, seed=11, max_tokens=40, logprobs=True, top_logprobs=20, **params)
    entries = result.entries
    assert len(entries) == len(result.content_chunks) == len(result.deltas("content"))
    assert "".join(e["token"] for e in entries) == result.content
    for entry in entries:
        top = entry["top_logprobs"]
        assert len(top) == 20
        values = [t["logprob"] for t in top]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-9
        assert entry["bytes"] == list(entry["token"].encode())
        assert all(t["bytes"] == list(t["token"].encode()) for t in top)
        same = [t["logprob"] for t in top if t["token"] == entry["token"]]
        if same:
            assert same[0] == entry["logprob"]
        else:
            assert entry["logprob"] <= values[-1]


def test_whole_answer_logprobs_equal_the_streamed_ones(http):
    streamed = stream(http, seed=4, max_tokens=30, logprobs=True, top_logprobs=5)
    answer = whole(http, seed=4, max_tokens=30, logprobs=True, top_logprobs=5)
    assert answer["choices"][0]["logprobs"]["content"] == streamed.entries
    assert whole(http, seed=4, max_tokens=5)["choices"][0]["logprobs"] is None


def test_usage_counts_what_was_streamed(http):
    messages = [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    result = stream(http, model="local/ngram-thinking", messages=messages, seed=2)
    usage = result.usage
    reasoning_chunks = len(result.deltas("reasoning"))
    assert usage["prompt_tokens"] == 4 + 5  # "You are brief." and the prompt
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning_chunks > 0
    assert usage["completion_tokens"] == reasoning_chunks + len(result.content_chunks)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_no_usage_chunk_unless_asked(http):
    with http.stream("POST", "/chat/completions", json=body(stream=True, max_tokens=5)) as response:
        assert Stream(list(response.iter_lines())).usage is None


# --- reasoning switches -----------------------------------------------------------------------------------------


def _reasoning(
    http: httpx.Client, reasoning: dict[str, Any] | None, model: str = "local/ngram-thinking"
) -> tuple[str, int]:
    extra = {"reasoning": reasoning} if reasoning is not None else {}
    result = stream(http, model=model, seed=6, **extra)
    text = "".join(result.deltas("reasoning") or result.deltas("reasoning_content"))
    return text, result.usage["completion_tokens_details"]["reasoning_tokens"]


def test_reasoning_switches(http):
    assert _reasoning(http, {"enabled": False}) == ("", 0)
    hidden_text, hidden_count = _reasoning(http, {"exclude": True})
    assert hidden_text == "" and hidden_count > 0
    _, budget = _reasoning(http, {"max_tokens": 10}, "local/ngram-thinking-rc")
    assert 0 < budget <= 10
    low = _reasoning(http, {"effort": "low"})[1]
    high = _reasoning(http, {"effort": "high"})[1]
    assert low <= 16 < 96 <= high <= 128
    assert _reasoning(http, None)[1] == _reasoning(http, {"effort": "medium"})[1]


@pytest.mark.parametrize("model", ["local/ngram-thinking", "local/ngram-thinking-rc"])
def test_max_tokens_bounds_the_whole_completion_reasoning_included(http, model):
    # All thought: medium effort wants ~48 reasoning tokens, max_tokens=5 stops it at 5 and leaves no answer.
    for result in (stream(http, model=model, seed=3, max_tokens=5), whole(http, model=model, seed=3, max_tokens=5)):
        usage = result.usage if isinstance(result, Stream) else result["usage"]
        assert usage["completion_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"] == 5
        if isinstance(result, Stream):
            assert result.content == "" and result.finish_reason == "length"
            assert len(result.deltas("reasoning") or result.deltas("reasoning_content")) == 5
        else:
            assert result["choices"][0]["message"]["content"] == ""
            assert result["choices"][0]["finish_reason"] == "length"
    # Room left: the answer gets what the reasoning did not use, and the total stays within max_tokens.
    for seed in range(4):
        result = stream(http, model=model, seed=seed, max_tokens=30, reasoning={"effort": "low"}, ignore_eos=True)
        usage = result.usage
        thought = usage["completion_tokens_details"]["reasoning_tokens"]
        assert 0 < thought <= 16 and usage["completion_tokens"] == 30
        assert len(result.content_chunks) == 30 - thought and result.finish_reason == "length"


def test_think_inline_stays_within_max_tokens(http):
    for max_tokens in (1, 2, 10, 60):
        result = stream(http, headers={"X-Wcode-Fault": "think_inline"}, seed=8, max_tokens=max_tokens)
        assert result.usage["completion_tokens"] == len(result.content_chunks) <= max_tokens
        assert result.content.startswith("<think>\n")
        if max_tokens <= 10:  # the 48-token inline thought is cut short and the answer, if any, by the length
            assert result.finish_reason == "length"
    assert stream(http, headers={"X-Wcode-Fault": "think_inline"}, max_tokens=1).content == "<think>\n"


def test_the_plain_model_never_thinks(http):
    result = stream(http, reasoning={"enabled": True, "effort": "high"})
    assert result.usage["completion_tokens_details"]["reasoning_tokens"] == 0


# --- request errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", 1.5),
        ("top_k", -1),
        ("top_k", 1.5),
        ("frequency_penalty", 2.1),
        ("presence_penalty", -3),
        ("repetition_penalty", 2.5),
        ("min_p", 1.1),
        ("top_a", -0.5),
        ("max_tokens", 0),
        ("top_logprobs", 21),
        ("seed", "abc"),
        ("logit_bias", {"0": 101}),
        ("logit_bias", {"not a token": 1}),
        ("stop", 5),
        ("stream", "yes"),
        ("n", 2),
    ],
)
def test_out_of_range_parameters_are_400_naming_the_parameter(http, param, value):
    response = http.post("/chat/completions", json=body(**{param: value}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["code"] == 400
    assert param in error["message"]


def test_prompt_plus_max_tokens_over_the_context_is_400_naming_max_tokens_and_the_limit(http):
    limit = local.CONTEXT_TOKENS
    assert whole(http, max_tokens=limit - 5)["usage"]["prompt_tokens"] == 5  # exactly the context: accepted
    for name in ("max_tokens", "max_completion_tokens"):
        response = http.post("/chat/completions", json=body(stream=True, **{name: limit - 4}))
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == name and error["type"] == "invalid_request_error"
        assert error["code"] == "context_length_exceeded"
        assert name in error["message"] and f"{limit:,}" in error["message"] and f"{limit - 5:,}" in error["message"]


def test_without_max_tokens_the_completion_gets_the_default_or_the_rest_of_the_context(http):
    from wcode_magic.local.chat import DEFAULT_MAX_TOKENS

    long = stream(http, ignore_eos=True)
    assert long.usage["completion_tokens"] == DEFAULT_MAX_TOKENS and long.finish_reason == "length"
    # A system message of " hot" x (context - 8) and the 5-token prompt leave 3 tokens of room.
    messages = [{"role": "system", "content": " hot" * (local.CONTEXT_TOKENS - 8)}, {"role": "user", "content": PROMPT}]
    filled = stream(http, messages=messages, ignore_eos=True)
    assert filled.usage["prompt_tokens"] == local.CONTEXT_TOKENS - 3
    assert filled.usage["completion_tokens"] == 3 and filled.finish_reason == "length"
    messages[0]["content"] += " hot" * 3  # the messages alone fill the context: nothing left, whatever max_tokens
    for extra in ({}, {"max_tokens": 1}):
        response = http.post("/chat/completions", json=body(messages=messages, **extra))
        error = response.json()["error"]
        assert response.status_code == 400 and error["param"] == "messages"
        assert error["code"] == "context_length_exceeded" and f"{local.CONTEXT_TOKENS:,}" in error["message"]


def test_top_logprobs_needs_logprobs(http):
    response = http.post("/chat/completions", json=body(top_logprobs=3))
    assert response.status_code == 400 and response.json()["error"]["param"] == "top_logprobs"


def test_bad_requests(http):
    unknown = http.post("/chat/completions", json=body(model="gpt-nothing", stream=True))
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    for payload in ({"model": "local/ngram"}, {"model": "local/ngram", "messages": []}):
        response = http.post("/chat/completions", json=payload)
        assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
    garbled = http.post("/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert garbled.status_code == 400 and "error" in garbled.json()


def test_api_key_is_not_checked(http):
    assert http.post("/chat/completions", json=body(max_tokens=2), headers={"Authorization": "Bearer x"}).is_success


# --- streaming promptness ---------------------------------------------------------------------------------------


def test_first_events_arrive_long_before_a_long_stream_ends(http):
    payload = body(stream=True, max_tokens=20000, ignore_eos=True, logprobs=True, top_logprobs=20)
    started = time.perf_counter()
    with http.stream("POST", "/chat/completions", json=payload) as response:
        chunks = response.iter_raw()
        received = [next(chunks)]
        first = time.perf_counter() - started
        received.extend(chunks)
    total = time.perf_counter() - started
    assert b"".join(received).count(b"data: {") == 20_002  # role, 20,000 tokens, finish
    assert first < total / 5


# --- faults -----------------------------------------------------------------------------------------------------


def fault(
    http: httpx.Client, header: str, key: str = "", timeout: httpx.Timeout | None = None, **extra: Any
) -> httpx.Response:
    headers = {"X-Wcode-Fault": header, "X-Wcode-Fault-Key": key}
    return http.post("/chat/completions", json=body(**extra), headers=headers, timeout=timeout or http.timeout)


@pytest.mark.parametrize("status", [401, 402, 403, 404, 408, 422, 429, 500, 502, 503])
def test_status_faults(http, status):
    response = fault(http, f"status={status}", stream=True)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == status


def test_retry_after_in_seconds_and_as_a_date(http):
    assert fault(http, "status=429,retry_after=3").headers["retry-after"] == "3"
    dated = fault(http, "status=503,retry_after=30,retry_after_date").headers["retry-after"]
    assert 20 < parsedate_to_datetime(dated).timestamp() - time.time() <= 31


def test_status_fault_times_then_success(http):
    key = f"times-{time.time()}"
    statuses = [fault(http, "status=500,times=2", key, max_tokens=3).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert fault(http, "status=500,times=2", key + "-other", max_tokens=3).status_code == 500


def _fault_stream(http: httpx.Client, header: str, **extra: Any) -> Stream:
    return stream(http, headers={"X-Wcode-Fault": header}, seed=8, max_tokens=12, **extra)


def test_error_after(http):
    result = _fault_stream(http, "error_after=3")
    assert len(result.content_chunks) == 3 and not result.done
    last = result.events[-1]
    assert last["error"]["code"] == 502 and "message" in last["error"]
    assert last["choices"][0]["finish_reason"] == "error"
    assert fault(http, "error_after=3").status_code == 502


def test_error_after_fires_at_the_end_of_a_short_answer(http):
    result = _fault_stream(http, "error_after=500")
    assert result.events[-1]["error"] and not result.done


def open_fault_stream(http: httpx.Client, header: str, **extra: Any) -> Any:
    """The raw streamed response to a request carrying ``X-Wcode-Fault: header`` (a context manager)."""
    payload = body(stream=True, **extra)
    return http.stream("POST", "/chat/completions", json=payload, headers={"X-Wcode-Fault": header})


def _is_token(line: str) -> bool:
    return '"content":"' in line and '"content":""' not in line


def test_drop_after(http):
    received = []
    with pytest.raises(httpx.RemoteProtocolError), open_fault_stream(http, "drop_after=4", max_tokens=20) as response:
        received.extend(response.iter_lines())
    assert sum(map(_is_token, received)) <= 4
    with pytest.raises(httpx.RemoteProtocolError):
        fault(http, "drop_after=4", max_tokens=20)


def test_stall_after(http):
    started = time.perf_counter()
    with open_fault_stream(http, "stall_after=2,stall_s=0.6", max_tokens=6, seed=1) as response:
        stamps = [time.perf_counter() - started for line in response.iter_lines() if _is_token(line)]
    assert len(stamps) == 6
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) >= 0.5 and gaps.index(max(gaps)) == 1


def test_stall_times_out_a_client(http):
    with pytest.raises(httpx.ReadTimeout):
        fault(http, "stall_after=1", stream=True, timeout=httpx.Timeout(5, read=0.5))


def test_malformed_after(http):
    with open_fault_stream(http, "malformed_after=2", max_tokens=5) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    bad = lines.index("data: {not json")
    assert sum(map(_is_token, lines[:bad])) == 2
    assert sum(map(_is_token, lines[bad:])) == 3
    assert fault(http, "malformed_after=2").text == "{not json"


def test_keepalive_comments(http):
    result = _fault_stream(http, "keepalive")
    assert result.comments[0] == ": OPENROUTER PROCESSING"
    assert result.comments.count(": keep-alive") >= 5 and result.done
    assert fault(http, "keepalive", max_tokens=3).json()["object"] == "chat.completion"


def test_delay_ms(http):
    started = time.perf_counter()
    assert fault(http, "delay_ms=300", max_tokens=2).is_success
    assert time.perf_counter() - started >= 0.3


def test_pace_limits_tokens_a_second_in_the_thinking_and_the_answer(http):
    headers = {"X-Wcode-Fault": "pace=400"}
    extra = {"model": "local/ngram-thinking", "max_tokens": 120, "ignore_eos": True, "reasoning": {"max_tokens": 40}}
    started = time.perf_counter()
    paced = stream(http, headers, seed=3, **extra)
    took = time.perf_counter() - started
    assert paced.usage["completion_tokens"] == 120 and paced.usage["completion_tokens_details"]["reasoning_tokens"]
    assert took >= 112 / 400  # a pause after every 16 tokens, thinking included: 7 pauses of 0.04 s at least
    again = stream(http, seed=3, **extra)
    assert [e["choices"] for e in paced.events] == [e["choices"] for e in again.events]  # the same answer, slower
    assert fault(http, "pace=x", max_tokens=2).status_code == 400


def test_delays_overlap_across_concurrent_requests(local_url):
    """delay_ms simulates latency for concurrency benchmarks, so it must not block the server."""

    async def main() -> float:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(base_url=local_url, timeout=20, limits=limits) as client:
            started = time.perf_counter()
            headers = {"X-Wcode-Fault": "delay_ms=300"}
            requests = [client.post("/chat/completions", json=body(max_tokens=5), headers=headers) for _ in range(40)]
            responses = await asyncio.gather(*requests)
            assert all(r.status_code == 200 for r in responses)
            return time.perf_counter() - started

    assert asyncio.run(main()) < 2.0  # 40 x 0.3 s one after another would take 12 s


def test_think_inline(http):
    # max_tokens covers the tags and the inline thought (up to 48 tokens), so leave room for an answer
    result = stream(http, headers={"X-Wcode-Fault": "think_inline"}, seed=8, max_tokens=80)
    text = result.content
    assert re.match(r"<think>\nLet me think about .+\n</think>\n\n.", text, re.DOTALL)
    assert result.usage["completion_tokens"] == len(result.content_chunks)
    assert not result.deltas("reasoning")


def test_bad_fault_header_is_400(http):
    response = fault(http, "statuss=500")
    assert response.status_code == 400 and response.json()["error"]["param"] == "X-Wcode-Fault"


def test_fault_header_ignored_outside_test_mode():
    import uvicorn

    from wcode_magic.local.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        response = httpx.post(url, json=body(max_tokens=3), headers={"X-Wcode-Fault": "status=500"})
        assert response.status_code == 200
    finally:
        server.should_exit = True
        thread.join(5)


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_serve_prints_the_url_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "wcode_magic.cli", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", line).group()
        assert httpx.get(url + "/models", timeout=10).json()["data"][0]["id"] == "local/ngram"
    finally:
        process.terminate()
        process.wait(10)


def test_cancelled_requests_end_quietly_in_a_serve_process():
    """Clients that go away (Stop, an interrupted sweep) before or while they are answered leave no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wcode_magic.cli", "serve", "--port", "0", "--test-mode"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", process.stdout.readline()).group() + "/chat/completions"
        long = body(model="local/ngram-thinking", stream=True, max_tokens=4000, ignore_eos=True)

        async def read_then_leave(client: httpx.AsyncClient, payload: dict[str, Any], spec: str = "") -> None:
            headers = {"X-Wcode-Fault": spec} if spec else {}
            async with client.stream("POST", url, json=payload, headers=headers) as response:
                async for _ in response.aiter_bytes():
                    return  # mid-stream: the first bytes arrived, the rest is abandoned

        async def leave_while_waiting(client: httpx.AsyncClient, payload: dict[str, Any], spec: str) -> None:
            task = asyncio.create_task(client.post(url, json=payload, headers={"X-Wcode-Fault": spec}))
            await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        async def main() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                await read_then_leave(client, long)
                await read_then_leave(client, long, "stall_after=3,stall_s=0.3")
                await asyncio.gather(*(read_then_leave(client, long) for _ in range(4)))
                await leave_while_waiting(client, long, "delay_ms=1000")  # gone before its body is read
                await leave_while_waiting(client, body(max_tokens=5), "delay_ms=1000")
                await leave_while_waiting(client, body(max_tokens=5), "stall_after=1,stall_s=1")  # whole answer

        asyncio.run(main())
        # started after every cancelled request, so its (longer) delay ends after theirs: they have all been handled
        after = httpx.post(url, json=body(max_tokens=3), headers={"X-Wcode-Fault": "delay_ms=1500"}, timeout=30)
        assert after.status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "Traceback" not in stderr and "ClientDisconnect" not in stderr and "Exception" not in stderr, stderr
