"""The local model calls tools (local/toolcalls.py): over real HTTP, streamed and whole, in every dialect."""

from __future__ import annotations

import json

import httpx
import pytest

from wcode_magic.local import toolcalls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "detail": {"type": ["boolean", "null"]},
            },
            "required": ["city", "days"],
        },
    },
}
RATE = {
    "type": "function",
    "function": {
        "name": "exchange_rate",
        "parameters": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}},
            "required": ["amount", "currency"],
        },
    },
}


def _body(text, **kw):
    return {"model": "local/ngram", "tools": [WEATHER, RATE], "messages": [{"role": "user", "content": text}], **kw}


def _calls(body):
    found = toolcalls.plan(body)
    return [(c.name, json.loads(c.arguments)) for c in found.calls] if found else None


def test_a_named_tool_is_called_with_numbers_and_quoted_strings_from_the_message():
    assert _calls(_body('Use get_weather for "New York", 3 days, in fahrenheit')) == [
        ("get_weather", {"city": "New York", "days": 3, "unit": "fahrenheit"})
    ]
    # the name with spaces, and an unquoted city: the first word after the name that is no filler
    assert _calls(_body("what is the get weather for Paris in 2 days")) == [
        ("get_weather", {"city": "Paris", "days": 2})
    ]


def test_two_named_tools_are_two_calls_unless_parallel_calls_are_off():
    text = 'exchange_rate of 12.5 "EUR" and then get_weather in "Oslo" for 4 days'
    assert _calls(_body(text)) == [
        ("exchange_rate", {"amount": 12.5, "currency": "EUR"}),
        ("get_weather", {"city": "Oslo", "days": 4}),
    ]
    assert [n for n, _ in _calls(_body(text, parallel_tool_calls=False))] == ["exchange_rate"]


def test_tool_choice_decides_when_the_message_names_nothing():
    assert _calls(_body("How warm is it in Rome?")) is None
    assert _calls(_body("How warm is it in Rome?", tool_choice="auto")) is None
    assert _calls(_body("How is the weather in Rome?", tool_choice="required")) == [
        ("get_weather", {"city": "Rome", "days": 1})
    ]
    forced = {"type": "function", "function": {"name": "exchange_rate"}}
    assert _calls(_body("Convert 30 'USD' please", tool_choice=forced)) == [
        ("exchange_rate", {"amount": 30, "currency": "USD"})
    ]
    assert _calls(_body("Use get_weather for Paris", tool_choice="none")) is None


def test_after_tool_results_it_answers_from_them():
    messages = [
        {"role": "user", "content": "get_weather for Paris"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 degrees"},
    ]
    found = toolcalls.plan({"tools": [WEATHER], "messages": messages})
    assert found is not None and found.results == (("get_weather", "sunny, 21 degrees"),)
    assert toolcalls.result_sentence(found.results) == "get_weather returned sunny, 21 degrees."


def test_fragments_carry_id_and_name_first_then_the_arguments_in_pieces():
    call = toolcalls.Call("call_1", "get_weather", '{"city": "Paris", "days": 3}')
    parts = toolcalls.call_fragments((call,))
    assert parts[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert len(parts) > 4 and all(set(p) == {"index", "function"} for p in parts[1:])
    assert "".join(p["function"]["arguments"] for p in parts) == call.arguments


@pytest.mark.parametrize("model", ["local/ngram", "local/ngram-thinking", "local/ngram-thinking-rc"])
def test_the_server_streams_a_tool_call_in_pieces(local_url, model):
    body = _body('Please get_weather for "Lima" in 5 days', model=model, stream=True)
    body["stream_options"] = {"include_usage": True}
    raw = httpx.post(local_url + "/chat/completions", json=body, timeout=30).text
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    pieces = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"]["name"] == "get_weather"
    assert len(pieces) > 3
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"city": "Lima", "days": 5}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert "tool_calls" in finishes
    thought = [d for d in deltas if d.get("reasoning") or d.get("reasoning_content")]
    assert bool(thought) == (model != "local/ngram")  # thinking models think before they call
    usage = next(c["usage"] for c in chunks if c.get("usage"))
    assert usage["completion_tokens"] >= len(pieces)


def test_the_whole_answer_carries_the_calls_and_a_tool_result_gets_an_answer(local_url):
    whole = httpx.post(local_url + "/chat/completions", json=_body('get_weather "Kyiv" 2'), timeout=30).json()
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Kyiv", "days": 2}
    messages = [
        {"role": "user", "content": 'get_weather "Kyiv" 2'},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "snow and minus 3"},
    ]
    body = {"model": "local/ngram", "tools": [WEATHER], "messages": messages, "max_tokens": 20, "seed": 1}
    answer = httpx.post(local_url + "/chat/completions", json=body, timeout=30).json()["choices"][0]
    assert answer["message"]["content"].startswith("get_weather returned snow and minus 3.")
    assert answer["finish_reason"] in ("stop", "length") and "tool_calls" not in answer["message"]


def test_tools_the_server_cannot_read_are_a_400_naming_them(local_url):
    bad = httpx.post(local_url + "/chat/completions", json=_body("hi") | {"tools": [{"type": "function"}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tools"
    forced = {"type": "function", "function": {"name": "nope"}}
    bad = httpx.post(local_url + "/chat/completions", json=_body("hi", tool_choice=forced))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tool_choice"


def test_wm_chat_with_tool_dicts_gets_the_calls_and_runs_nothing(local_url, session):
    import wcode_magic as wm

    r = wm.chat("Use get_weather for 'Quito' over 7 days", model="local/ngram", base_url=local_url, tools=[WEATHER])
    assert r.finish_reason == "tool_calls" and r.text == ""
    assert json.loads(r.tool_calls[0]["function"]["arguments"]) == {"city": "Quito", "days": 7}
