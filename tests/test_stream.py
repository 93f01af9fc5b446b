"""The pure stream layer: every shape in protocol.md folded into a Response, without any I/O."""

from __future__ import annotations

import pytest
from wire import ARK_R1, JSON_FIXTURES, LOGPROBS, OPENROUTER_REASONING, THINK_INLINE, TOOL_CALLS, sse_chunks

from wcode_magic.core.response import Response
from wcode_magic.core.stream import Event, ThinkSplitter, chunk_events


def fold(raw: bytes, request: dict | None = None) -> Response:
    r = Response(request or {"model": "m"})
    for chunk in sse_chunks(raw):
        r.feed(chunk)
    r.finish(complete=True)
    return r


def test_openrouter_reasoning_details_are_kept_but_not_counted_twice():
    r = fold(OPENROUTER_REASONING, {"model": "deepseek/deepseek-r1-0528-qwen3-8b"})
    assert r.reasoning == "Okay, the user asks 2+2."
    assert r.text == "4"
    assert [d["text"] for d in r.reasoning_details] == ["Okay, the user", " asks 2+2."]
    assert r.finish_reason == "stop" and r.native_finish_reason == "stop"
    # usage came on a trailing empty choice after the finish chunk
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.reasoning_tokens) == (12, 41, 39)
    assert r.usage.answer_tokens == 2
    assert r.message["reasoning_details"] == r.reasoning_details
    assert "reasoning" not in r.message


def test_ark_reasoning_content_and_usage_in_empty_choices_chunk():
    r = fold(ARK_R1, {"model": "deepseek-r1"})
    assert r.reasoning == "嗯，用户问的是"
    assert r.text == "答案是 4。"
    assert r.model == "deepseek-r1-250528"
    assert r.usage.total_tokens == 130 and r.usage.reasoning_tokens == 112
    # priced by the requested catalog id, not the dated id the server answers with (seeds/001)
    assert r.cost == pytest.approx((10 * 0.005 + 120 * 0.0175) / 1000)
    assert r.raw["service_tier"] == "default"
    assert r.raw["choices"][0]["message"]["reasoning_content"] == r.reasoning


def test_usage_takes_the_last_non_null_and_role_only_deltas_are_harmless():
    r = Response({"model": "m"})
    r.feed({"choices": [{"index": 0, "delta": {"role": "assistant"}}], "usage": None})
    r.feed({"choices": [{"index": 0, "delta": {"content": "a", "reasoning": None}}], "usage": {"prompt_tokens": 1}})
    r.feed(
        {
            "choices": [{"index": 0, "delta": {"content": None}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        }
    )
    r.finish(complete=True)
    assert r.text == "a" and r.usage.prompt_tokens == 2 and r.finish_reason == "length"


def test_logprob_entries_append_across_chunks_and_sentinels_become_minus_inf():
    r = fold(LOGPROBS, {"model": "m", "logprobs": True})
    assert [e["token"] for e in r.logprobs] == ["Hello", "!"]
    assert r.logprobs[0]["logprob"] == pytest.approx(-0.0312)
    assert r.logprobs[1]["logprob"] == float("-inf")
    assert r.logprobs_status == "sent"


@pytest.mark.parametrize("value", [-9999.0, None, float("-inf"), -100, -1000.0])
def test_each_sentinel_is_minus_inf(value):
    from wcode_magic.core.logprobs import normalize_logprob

    assert normalize_logprob(value) == float("-inf")
    assert normalize_logprob(-2.5) == -2.5


def test_think_tags_inline_are_moved_to_reasoning():
    r = fold(THINK_INLINE)
    assert r.reasoning == "plan the"
    assert r.text == "Final <think> stays"


@pytest.mark.parametrize("cut", range(1, 30))
def test_think_splitter_any_cut(cut):
    whole = "<think>a<b</think>\n\nanswer </think> x"
    s = ThinkSplitter()
    events = s.feed(whole[:cut]) + s.feed(whole[cut:]) + s.flush()
    reasoning = "".join(e.value for e in events if e.kind == "reasoning")
    content = "".join(e.value for e in events if e.kind == "content")
    assert (reasoning, content) == ("a<b", "answer </think> x")


def test_think_splitter_leaves_plain_answers_alone():
    s = ThinkSplitter()
    assert s.feed("<") == []  # could be a tag: held
    assert s.feed("b>bold") == [Event("content", "<b>bold")]
    assert s.feed(" <think>") == [Event("content", " <think>")]


def test_tool_call_fragments_assemble():
    r = fold(TOOL_CALLS)
    assert r.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert r.finish_reason == "tool_calls"


@pytest.mark.parametrize("name,field", [("seed_deepseek_r1", "reasoning_content"), ("seed_r1_qwen3_8b", "reasoning")])
def test_non_streamed_seed_answers_fold_the_same_way(name, field):
    body = JSON_FIXTURES[name]
    r = Response({"model": body["model"]})
    r.feed(body)
    r.finish(complete=True)
    msg = body["choices"][0]["message"]
    assert r.text == msg["content"] and r.reasoning == msg[field]
    assert r.usage.completion_tokens == body["usage"]["completion_tokens"]


def test_error_object_is_an_event():
    events = chunk_events(
        {"error": {"code": 502, "message": "x"}, "choices": [{"delta": {}, "finish_reason": "error"}]}
    )
    assert [e.kind for e in events] == ["finish", "error"]


def test_text_is_joined_lazily_and_stays_linear():
    r = Response({"model": "m"})
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
    for _ in range(50_000):
        r.feed(chunk)
    assert len(r.text) == 50_000 and r.text is r.text  # cached until a new piece arrives


def test_loads_reads_what_python_servers_write_and_orjson_rejects():
    from wcode_magic.core.stream import loads

    chunk = loads('{"choices":[{"logprobs":{"content":[{"token":"\\ud800","logprob":-Infinity,"x":NaN}]}}]}')
    entry = chunk["choices"][0]["logprobs"]["content"][0]
    assert entry["token"] == "\ud800" and entry["logprob"] == float("-inf") and entry["x"] != entry["x"]
    with pytest.raises(ValueError):
        loads("{not json")


def test_repeated_chunk_metadata_is_folded_once_and_a_change_still_lands():
    """Every chunk repeats id and model: the Response applies only changes (a provider switching mid-stream)."""
    r = Response({"model": "m"})
    for i, model in enumerate(["a", "a", "b"]):
        r.feed({"id": "g1", "model": model, "provider": f"p{i}", "choices": [{"index": 0, "delta": {"content": "x"}}]})
    r.finish(complete=True)
    assert r.text == "xxx" and r.model == "b" and r.raw["provider"] == "p2"
    assert r.ttft_s is not None
