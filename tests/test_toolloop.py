"""The tool loop (core/toolloop.py) end to end over real HTTP: the local model, and replayed provider shapes."""

from __future__ import annotations

import asyncio
import json
import time

import pandas as pd
import pytest
from tool_wire import ScriptServer, answer_stream, call_stream

import wcode_magic as wm
from wcode_magic.core import errors

LOCAL = "local/ngram"


def get_weather(city: str, days: int = 1) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
        days: How many days ahead.
    """
    return f"sunny in {city} for {days} days"


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@pytest.fixture(scope="module")
def script():
    server = ScriptServer()
    yield server
    server.stop()


def _run(transport, *args, **kw):
    return wm.chat(*args, **kw) if transport == "sync" else asyncio.run(wm.achat(*args, **kw))


# -- against the local model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["sync", "async"])
def test_the_loop_runs_end_to_end_on_the_local_model(local_url, session, transport):
    events = []
    r = _run(
        transport,
        "Use get_weather for 'Paris' over 3 days",
        model=LOCAL,
        base_url=local_url,
        tools=[get_weather],
        max_tokens=30,
        on_event=lambda e: events.append(e.kind),
    )
    assert r.status == "done" and r.text.startswith("get_weather returned sunny in Paris for 3 days.")
    assert len(r.steps) == 2 and r.steps[-1] is r and r.steps[0].finish_reason == "tool_calls"
    # the request carried the schema; the second step the call and its result with the call's id
    sent = r.steps[1].request
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assistant, tool = sent["messages"][-2:]
    call_id = assistant["tool_calls"][0]["id"]
    assert tool == {"role": "tool", "tool_call_id": call_id, "content": "sunny in Paris for 3 days"}
    assert [m["role"] for m in r.tool_messages] == ["assistant", "tool", "assistant"]
    # usage and cost add up over the steps
    first = r.steps[0].usage
    assert r.usage.completion_tokens > first.completion_tokens
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    t = r.turns
    assert list(t.columns) == ["step", "kind", "name", "arguments", "result", "error", "tokens", "cost", "seconds"]
    assert list(t.kind) == ["tool_call", "tool_result", "answer"] and list(t.step) == [1, 1, 2]
    assert t.arguments[0] == '{"city": "Paris", "days": 3}' and t.result[1] == "sunny in Paris for 3 days"
    assert t.tokens.sum() == r.usage.completion_tokens
    assert {"tools", "tool_call_ready", "tool_result"} <= set(events) and events.count("start") == 2
    assert wm.last() is r


def test_a_thinking_model_thinks_before_it_calls(local_url, session):
    r = wm.chat("Use get_weather for 'Rome'", model="local/ngram-thinking-rc", base_url=local_url, tools=[get_weather])
    kinds = list(r.turns.kind)
    assert kinds[:3] == ["thinking", "tool_call", "tool_result"] and kinds[-1] == "answer"
    assert r.turns.tokens.sum() == r.usage.completion_tokens


def test_several_async_calls_in_one_step_run_concurrently(local_url, session):
    async def slow(n: int) -> int:
        """Double n, slowly."""
        await asyncio.sleep(0.4)
        return 2 * n

    started = time.perf_counter()
    r = asyncio.run(wm.achat("Call slow with 4 and slow with 5", model=LOCAL, base_url=local_url, tools=[slow]))
    results = r.turns[r.turns.kind == "tool_result"]
    assert list(results.result) == ["8", "10"] and time.perf_counter() - started < 0.4 * 2
    sent = r.steps[1].request["messages"]
    assert [m.get("tool_call_id") for m in sent[-2:]] == [c["id"] for c in r.steps[0].tool_calls]
    # the sync loop awaits them as well (on its own loop, so it works inside a notebook cell too)
    r = wm.chat("Call slow with 1 and slow with 2", model=LOCAL, base_url=local_url, tools=[slow])
    assert list(r.turns[r.turns.kind == "tool_result"].result) == ["2", "4"]


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_function_that_raises_goes_back_to_the_model_as_its_result(local_url, session, transport):
    r = _run(transport, "divide 1 by 0", model=LOCAL, base_url=local_url, tools=[divide], max_tokens=30)
    row = r.turns[r.turns.kind == "tool_result"].iloc[0]
    assert row.error == "Error: divide raised ZeroDivisionError: float division by zero" and pd.isna(row.result)
    assert r.steps[1].request["messages"][-1]["content"] == row.error
    assert r.status == "done" and "divide returned Error: divide raised ZeroDivisionError" in r.text


def test_max_steps_ends_with_a_clear_status_and_keeps_everything(local_url, session):
    r = wm.chat("Use get_weather for 'Oslo'", model=LOCAL, base_url=local_url, tools=[get_weather], max_steps=1)
    assert r.status == "max_steps" and "MAX_STEPS" in r.footer() and len(r.steps) == 1
    assert r.tool_messages[-1]["content"] == "Not run: the tool loop reached max_steps=1."
    assert r.turns.kind.tolist() == ["tool_call", "tool_result"]
    # the conversation stays valid: a follow-up with the loop's messages is accepted
    follow = [{"role": "user", "content": "Use get_weather for 'Oslo'"}, *r.tool_messages]
    again = wm.chat([*follow, {"role": "user", "content": "and now?"}], model=LOCAL, base_url=local_url)
    assert again.status == "done"


def test_a_declined_call_is_reported_to_the_model_as_declined(local_url, session):
    asked = []

    def never(call):
        asked.append((call.name, json.loads(call.arguments)))
        return False

    r = wm.chat("get_weather for 'Lima' in 2 days", model=LOCAL, base_url=local_url, tools=[get_weather], confirm=never)
    assert asked == [("get_weather", {"city": "Lima", "days": 2})]
    assert r.turns.error[1].startswith("Declined: the user did not allow this call.")
    assert r.text.startswith("get_weather returned Declined")
    r = wm.chat("get_weather 'Lima'", model=LOCAL, base_url=local_url, tools=[get_weather], confirm=lambda c: True)
    assert r.turns.result[1] == "sunny in Lima for 1 days"


def test_stop_mid_loop_keeps_everything_so_far(local_url, session):
    def interrupted(city: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(errors.StoppedError) as info:
        wm.chat("interrupted 'Bern'", model=LOCAL, base_url=local_url, tools=[interrupted])
    partial = info.value.partial
    assert partial.status == "stopped" and len(partial.steps) == 1 and "step 1" in info.value.message
    assert partial.turns.kind.tolist() == ["tool_call"]
    call_id = partial.tool_calls[0]["id"]
    assert partial.tool_messages[-1] == {
        "role": "tool",
        "tool_call_id": call_id,
        "content": "Not run: the tool loop was stopped.",
    }


def test_cancelling_an_async_loop_marks_it_stopped(local_url, session):
    async def hang(city: str) -> str:
        await asyncio.sleep(30)
        return city

    async def main():
        task = asyncio.ensure_future(wm.achat("hang 'Bern'", model=LOCAL, base_url=local_url, tools=[hang]))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert wm.last().status == "stopped" and wm.last().turns.kind.tolist() == ["tool_call"]


@pytest.mark.parametrize(
    ("value", "message"), [(0, "max_steps=0 is not allowed"), ("3", "integer >= 1"), (True, "max_steps=True")]
)
def test_bad_max_steps_is_refused_before_anything_is_sent(local_url, session, value, message):
    with pytest.raises(errors.InvalidParameterError, match=message):
        wm.chat("hi", model=LOCAL, base_url=local_url, tools=[get_weather], max_steps=value)
    with pytest.raises(errors.InvalidParameterError, match="confirm takes True"):
        wm.chat("hi", model=LOCAL, base_url=local_url, tools=[get_weather], confirm="yes")


def test_without_a_call_the_loop_is_one_ordinary_step(local_url, session):
    r = wm.chat("Tell me about the sea", model=LOCAL, base_url=local_url, tools=[get_weather], max_tokens=10)
    assert r.status == "done" and len(r.steps) == 1 and r.turns.kind.tolist() == ["answer"]
    plain = wm.chat("Tell me about the sea", model=LOCAL, base_url=local_url, max_tokens=10)
    assert plain.turns.kind.tolist() == ["answer"] and plain.steps == []


# -- against replayed provider shapes --------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["sync", "async"])
def test_provider_shapes_arguments_in_many_chunks_two_calls_reasoning_first(script, session, transport):
    args_a = json.dumps({"city": "Paris", "days": 2})
    args_b = json.dumps({"a": 9, "b": 3})
    url = script.play(
        call_stream(
            [("call_a", "get_weather", args_a), ("call_b", "divide", args_b)], reasoning="I should look.", piece=2
        ),
        answer_stream("Sunny, and 3."),
    )
    r = _run(transport, "weather and a division", model="m", base_url=url, tools=[get_weather, divide])
    assert r.text == "Sunny, and 3." and r.status == "done"
    first = r.steps[0]
    assert first.reasoning == "I should look." and first.finish_reason == "tool_calls"
    assert [c["function"]["arguments"] for c in first.tool_calls] == [args_a, args_b]
    second = script.requests[1]["messages"]
    assert second[-2:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny in Paris for 2 days"},
        {"role": "tool", "tool_call_id": "call_b", "content": "3.0"},
    ]
    assert second[-3]["tool_calls"] == first.tool_calls and "reasoning_content" not in second[-3]
    assert r.usage.completion_tokens == 12 and r.usage.prompt_tokens == 20
    assert r.turns.kind.tolist() == ["thinking", "tool_call", "tool_call", "tool_result", "tool_result", "answer"]


def test_failures_are_results_bad_json_unknown_name_arguments_that_do_not_fit(script, session):
    url = script.play(
        call_stream(
            [
                ("c1", "get_weather", '{"city": "Paris"'),
                ("c2", "launch_rockets", "{}"),
                ("c3", "divide", '{"a": "nine", "b": 3}'),
                ("c4", "get_weather", '{"town": "Paris"}'),
            ]
        ),
        answer_stream("Sorry."),
    )
    r = wm.chat("go", model="m", base_url=url, tools=[get_weather, divide])
    errors_sent = [m["content"] for m in script.requests[1]["messages"][-4:]]
    assert errors_sent[0].startswith("Error: The arguments are not valid JSON")
    assert (
        errors_sent[1] == "Error: there is no tool named 'launch_rockets'. The tools you can call: get_weather, divide."
    )
    assert errors_sent[2] == "Error: divide: argument 'a' must be a number, not \"nine\"."
    assert errors_sent[3] == "Error: get_weather has no argument 'town' (its arguments: city, days)."
    results = r.turns[r.turns.kind == "tool_result"]
    assert results.error.tolist() == errors_sent and results.result.isna().all()
    assert r.text == "Sorry."


def test_a_described_tool_without_a_function_is_not_run(script, session):
    spec = {"type": "function", "function": {"name": "by_hand", "parameters": {"type": "object", "properties": {}}}}
    url = script.play(call_stream([("c1", "by_hand", "{}")]), answer_stream("ok"))
    r = wm.chat("go", model="m", base_url=url, tools=[get_weather, spec])
    assert script.requests[0]["tools"][1] == spec
    assert r.turns.error[1].startswith("Error: by_hand is described but has no function to run here")


def test_a_broken_step_keeps_the_loop_on_the_partial(script, session):
    url = script.play(call_stream([("c1", "get_weather", '{"city": "Paris"}')]), call_stream([], done=False))
    with pytest.raises(errors.StreamError) as info:
        wm.chat("go", model="m", base_url=url, tools=[get_weather])
    partial = info.value.partial
    assert partial.status == "error" and len(partial.steps) == 2
    assert partial.turns.kind.tolist()[:2] == ["tool_call", "tool_result"]


def test_the_history_records_each_step(local_url, session):
    before = len(wm.history())
    r = wm.chat("Use get_weather for 'Riga'", model=LOCAL, base_url=local_url, tools=[get_weather], max_tokens=20)
    rows = wm.history(2)
    assert len(wm.history()) == before + 2
    assert sorted(rows["finish_reason"].tolist()) == sorted(s.finish_reason for s in r.steps)


# -- recorded and replayed (issue 14 item 6) ----------------------------------------------------------------------
DEAD = "http://127.0.0.1:9/v1"  # nothing listens there: a request that went out would fail


def _same_turns(replayed: pd.DataFrame, live: pd.DataFrame) -> None:
    """The turns alike: every cell, and the seconds of the model's turns as recorded (to 0.1 ms); a tool result's
    seconds are how long the function ran this time (the replay runs the tools again, only the model is replayed)."""
    assert list(replayed.columns) == list(live.columns) and len(replayed) == len(live)
    pd.testing.assert_frame_equal(replayed.drop(columns="seconds"), live.drop(columns="seconds"))
    model = live.kind != "tool_result"
    assert replayed.seconds[model].tolist() == pytest.approx(live.seconds[model].tolist(), abs=1e-4, nan_ok=True)
    assert replayed.seconds[~model].notna().tolist() == live.seconds[~model].notna().tolist()


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_recorded_tool_loop_replays_strictly_with_the_server_unreachable(tmp_path, counted_local, session, transport):
    """Two loops of one conversation (each: a thinking step calling two tools, one of which raises, then the
    answer), recorded against the local model, replay strictly with base_url on a closed port: the same turns,
    steps, messages and text, the tools run again, and no request is sent anywhere."""
    path = tmp_path / "loop.jsonl"
    ran: list[str] = []

    def weather(city: str, days: int = 1) -> str:
        """The weather in a city."""
        ran.append(city)
        return get_weather(city, days)

    tools = [weather, divide]
    kw = {"model": "local/ngram-thinking", "tools": tools, "max_tokens": 60, "logprobs": True, "top_logprobs": 2}
    first_ask = "Use weather for 'Paris' over 3 days, then divide 6 by 0"

    def conversation(url):
        one = _run(transport, first_ask, base_url=url, **kw)
        follow = [{"role": "user", "content": first_ask}, *one.tool_messages]
        two = _run(transport, [*follow, {"role": "user", "content": "Now weather for 'Oslo'"}], base_url=url, **kw)
        return one, two

    with wm.record(path):
        live = conversation(counted_local.base_url)
    assert [len(r.steps) for r in live] == [2, 2] and all(r.status == "done" for r in live)
    assert "divide raised ZeroDivisionError" in live[0].turns.error.dropna().iloc[0]
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 4  # the header, then every step of both loops
    sent, ran_live = counted_local.count, list(ran)

    session.update(base_url=DEAD, max_retries=0)
    with wm.replay(path, strict=True):
        again = conversation(DEAD)
    assert counted_local.count == sent and ran == ran_live * 2  # nothing sent; the tools ran again
    for was, now in zip(live, again, strict=True):
        assert now.status == "done" and now.text == was.text and now.reasoning == was.reasoning
        _same_turns(now.turns, was.turns)
        assert now.tool_messages == was.tool_messages and now.usage == was.usage and now.cost == was.cost
        assert [s.replayed for s in now.steps] == [True, True] and not any(s.replayed for s in was.steps)
        assert [s.request for s in now.steps] == [s.request for s in was.steps]
        assert [s.tool_calls for s in now.steps] == [s.tool_calls for s in was.steps]
        assert now.steps[-1].tokens().equals(was.steps[-1].tokens()) and len(now.steps[-1].tokens())
    assert ran_live == ["Paris", "Oslo"]


def test_a_tool_loop_stopped_in_its_answer_replays_stopped_there(tmp_path, local_url, session):
    path = tmp_path / "loop.jsonl"
    stopping = [True]
    pieces: list[str] = []

    def stop_in_the_answer(ev):
        if ev.kind == "content":
            pieces.append(ev.value)
            if len(pieces) == 2 and stopping[0]:
                raise KeyboardInterrupt

    def run():
        pieces.clear()
        with pytest.raises(errors.StoppedError) as info:
            wm.chat(
                "Use get_weather for 'Bern'",
                model=LOCAL,
                base_url=local_url,
                tools=[get_weather],
                on_event=stop_in_the_answer,
            )
        return info.value

    with wm.record(path):
        live = run()
    stopping[0] = False  # the replay stops by itself, where the user stopped
    with wm.replay(path, strict=True):
        again = run()
    assert str(again) == str(live) and len(pieces) == 2
    was, now = live.partial, again.partial
    assert now.status == was.status == "stopped" and len(now.steps) == len(was.steps) == 2
    assert now.text == was.text and now.steps[-1].replayed and now.steps[-1].stopped
    _same_turns(now.turns, was.turns)
    assert now.tool_messages == was.tool_messages


# -- served from the cache --------------------------------------------------------------------------------------------
@pytest.fixture
def own_history(tmp_path, monkeypatch):
    """A history of the test's own (the cache reads it)."""
    from wcode_magic.analysis import history

    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path / "data"))
    history._WRITER.close()
    yield
    history._WRITER.close()


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_tool_loop_served_from_the_cache_keeps_its_tool_calls(own_history, counted_local, session, transport):
    kw = {"model": "local/ngram-thinking", "base_url": counted_local.base_url, "tools": [get_weather, divide]}
    ask = "Use get_weather for 'Lima' over 2 days, then divide 9 by 3"
    live = _run(transport, ask, cache=True, **kw)
    sent = counted_local.count
    again = _run(transport, ask, cache=True, **kw)
    assert counted_local.count == sent  # every step from the history: nothing sent
    assert [s.cached for s in again.steps] == [True, True] and len(live.steps) == 2
    assert again.steps[0].tool_calls == live.steps[0].tool_calls and len(again.steps[0].tool_calls) == 2
    assert again.steps[0].finish_reason == "tool_calls" and again.status == "done" and again.text == live.text
    pd.testing.assert_frame_equal(again.turns.drop(columns="seconds"), live.turns.drop(columns="seconds"))
    assert again.tool_messages == live.tool_messages
    assert wm.history(1)["tool_calls"].iloc[0] is None  # the answer step called nothing
    assert wm.history(2)["tool_calls"].iloc[0] == live.steps[0].tool_calls


def test_a_cached_answer_names_the_model_the_server_answered_with(own_history, script, session):
    args = json.dumps({"city": "Quito"})
    url = script.play(call_stream([("call_q", "get_weather", args)]), answer_stream("Sunny in Quito."))
    live = wm.chat("weather in Quito", model="local/ngram", base_url=url, tools=[get_weather], cache=True)
    assert [s.model for s in live.steps] == ["m", "m"]  # the server says it answered with "m"
    url = script.play()  # nothing more to answer: a request would fail
    again = wm.chat("weather in Quito", model="local/ngram", base_url=url, tools=[get_weather], cache=True)
    assert script.requests == [] and [s.cached for s in again.steps] == [True, True]
    assert [s.model for s in again.steps] == ["m", "m"] and again.steps[0].tool_calls == live.steps[0].tool_calls
    assert again.text == "Sunny in Quito." and again.status == "done"
    assert list(wm.history()["model"]) == ["local/ngram"] * 4 and list(wm.history()["served_model"]) == ["m"] * 4


def test_a_tool_call_row_from_before_layout_4_is_not_served_without_its_calls(own_history, counted_local, session):
    from wcode_magic.analysis import history

    kw = {"model": LOCAL, "base_url": counted_local.base_url, "tools": [get_weather], "cache": True}
    wm.chat("Use get_weather for 'Lagos'", **kw)
    conn = history.connect()
    conn.execute("UPDATE exchanges SET tool_calls = NULL")  # as a row written before the calls were kept
    conn.close()
    sent = counted_local.count
    again = wm.chat("Use get_weather for 'Lagos'", **kw)
    # the first step is sent again (its calls get new ids, so the answer step is a new request as well)
    assert counted_local.count == sent + 2 and [s.cached for s in again.steps] == [False, False]
    assert again.steps[0].tool_calls and again.status == "done" and len(again.steps) == 2
