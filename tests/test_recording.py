"""Record, replay, cache (issue 12): the recording file's format, wm.record / wm.replay through every door of the
client (wm.chat, wm.achat, compare, batch) over real HTTP to the bundled local model, strict misses, the order of
repeats, pace, corrupt and newer files, two processes writing one file, the key scan, and cache=True."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wcode_magic as wm
from wcode_magic.analysis import history, recorder, recording
from wcode_magic.analysis.recording import RecordingError
from wcode_magic.analysis.usage import totals
from wcode_magic.core.client import STOPPED

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-record-SECRET-0123456789-abcdefghij"
THINK = {"model": "local/ngram-thinking", "max_tokens": 80, "logprobs": True, "top_logprobs": 3, "seed": 7}


@pytest.fixture(autouse=True)
def switches_off():
    """Every test starts and ends with no recording and no replay on."""
    wm.record(None)
    wm.replay(None)
    yield
    wm.record(None)
    wm.replay(None)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A history of the test's own (the cache reads it)."""
    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path / "data"))
    history._WRITER.close()
    yield tmp_path / "data"
    history._WRITER.close()


def ask(local_url: str, prompt: str = "What is a river?", **kw):
    return wm.chat(prompt, base_url=local_url, **{**THINK, **kw})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the file ----------------------------------------------------------------------------------------------------
def test_a_recording_is_json_lines_with_a_header_and_the_request_as_sent(tmp_path, local_url) -> None:
    path = tmp_path / "lesson.jsonl"
    with wm.record(path):
        streamed = ask(local_url)
        whole = ask(local_url, "What is a star?", stream=False)
    ask(local_url, "after the block")  # not recorded
    head, first, second = lines(path)
    assert head == {"wcode_recording": 1, "package": wm.__version__, "created": head["created"]}
    assert first["request"] == streamed.request and second["request"] == whole.request
    assert "base_url" not in json.dumps(first) and local_url not in path.read_text()
    assert first["events"][-1][1] == "[DONE]" and "body" not in first
    times = [t for t, _ in first["events"]]
    assert times == sorted(times) and times[0] > 0  # seconds from the request, enough to re-stream at its pace
    assert second["body"] and "events" not in second
    assert first["ttft_s"] == round(streamed.ttft_s, 4) and first["status"] == "done"


def test_a_corrupt_or_truncated_line_is_an_error_naming_it(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path):
        ask(local_url)
        ask(local_url, "What is a star?")
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # cut off inside the last exchange
    with pytest.raises(RecordingError, match=r"r\.jsonl, line 3: not valid JSON.*truncated"):
        wm.replay(path)
    rows = text.splitlines()
    path.write_text("\n".join([rows[0], '{"request": 1}', rows[2]]) + "\n")
    with pytest.raises(RecordingError, match="line 2: it has no request with a model"):
        wm.replay(path)
    path.write_text("# my notes\n")
    with pytest.raises(RecordingError, match="is not a wcode-magic recording"):
        wm.replay(path)
    with pytest.raises(RecordingError, match="is not a wcode-magic recording"):
        wm.record(path)  # never appends to a file that is not a recording
    with pytest.raises(RecordingError, match="There is no recording at"):
        wm.replay(tmp_path / "missing.jsonl")


def test_a_newer_format_says_which_version_is_needed(tmp_path) -> None:
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps({"wcode_recording": 2, "package": "0.3.0"}) + "\n")
    with pytest.raises(RecordingError, match=r"format 2; this wcode-magic reads format 1 .*wcode-magic>=0\.3\.0"):
        wm.replay(path)
    with pytest.raises(RecordingError, match="format 2"):
        wm.record(path)


def test_parse_and_differences_are_pure() -> None:
    head = recording.header("9.9.9", when=0).decode()
    ex = {"request": {"model": "m", "messages": [], "temperature": 0.7}, "events": [[0.1, "[DONE]"]]}
    (parsed,) = recording.parse([head, "", json.dumps(ex)], "mem")
    assert parsed.line == 3 and parsed.events == [(0.1, "[DONE]")]
    asked = {"model": "m", "messages": [], "temperature": 0.2, "stream": True}
    assert recording.differences(parsed.request, asked) == ["temperature: recorded 0.7, asked 0.2"]
    assert recording.differences({**parsed.request, "top_k": 3}, asked)[-1] == "top_k: recorded 3, asked not set"
    one = [{"role": "user", "content": "Why is the sky blue?"}]
    two = [*one, {"role": "assistant", "content": "Rayleigh."}]
    assert recording.differences({"messages": one}, {"messages": two}) == ["messages: recorded 1 messages, asked 2"]
    other = [{"role": "user", "content": "Why is the sea blue?"}, two[1]]
    assert recording.differences({"messages": two}, {"messages": other}) == [
        "messages[0].content: recorded 'Why is the sky blue?', asked 'Why is the sea blue?'"
    ]


def test_two_processes_appending_never_interleave(tmp_path) -> None:
    path = tmp_path / "shared.jsonl"
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from wcode_magic.analysis import recorder
        who = sys.argv[1]
        for i in range(150):
            line = {{"request": {{"model": "m", "messages": [{{"role": "user", "content": who * 20000}}]}},
                    "events": [[0.0, who + str(i)]]}}
            recorder.append(Path({str(path)!r}), (json.dumps(line) + "\\n").encode())
        """
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", script, who], env=env) for who in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    exchanges = recorder.load(path)  # every line whole: parse raises on any torn or mixed line
    assert len(exchanges) == 300 and path.read_text().count("wcode_recording") == 1
    for who in "ab":
        mine = [ex.events[0][1] for ex in exchanges if ex.events[0][1][0] == who]
        assert mine == [f"{who}{i}" for i in range(150)]


# -- replay ----------------------------------------------------------------------------------------------------------
def test_a_replay_is_whole_and_strict_replay_sends_nothing(tmp_path, local_url, counted_local) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path):
        live = ask(counted_local.base_url)
    sent = counted_local.count
    with wm.replay(path, strict=True):
        again = ask(counted_local.base_url)
    assert counted_local.count == sent  # no request reached the server
    assert again.replayed and not live.replayed and again.complete
    assert (again.text, again.reasoning, again.finish_reason) == (live.text, live.reasoning, live.finish_reason)
    assert again.usage.raw == live.usage.raw and again.cost == live.cost
    assert again.ttft_s == pytest.approx(live.ttft_s, abs=1e-4)
    assert again.latency_s == pytest.approx(live.latency_s, abs=1e-4)
    assert again.tokens().equals(live.tokens()) and again.alternatives().equals(live.alternatives())
    assert again.show_tokens()._repr_html_() == live.show_tokens()._repr_html_() and again.logprobs
    assert "replayed (recorded " in again.footer()
    assert again.request == live.request


def test_a_strict_miss_names_the_nearest_request_and_what_differs(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path):
        ask(local_url, temperature=0.7)
        ask(local_url, "Something else entirely", temperature=0.7)
    wm.replay(path, strict=True)
    with pytest.raises(wm.ReplayMissError, match=r"line 2\) differs in: temperature: recorded 0.7, asked 0.2") as e:
        ask(local_url, temperature=0.2)
    assert isinstance(e.value, wm.WcodeError) and e.value.differences == ["temperature: recorded 0.7, asked 0.2"]
    assert e.value.nearest["temperature"] == 0.7
    ask(local_url, temperature=0.7)
    with pytest.raises(wm.ReplayMissError, match="every recorded answer was already replayed"):
        ask(local_url, temperature=0.7)


def test_repeats_replay_in_order_and_a_loose_miss_goes_to_the_server_and_is_recorded(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    sample = {"seed": None, "temperature": 1.5}
    with wm.record(path):
        first = [ask(local_url, **sample).text for _ in range(3)]
    assert len(set(first)) > 1  # sampling without a seed: three different answers
    with wm.replay(path), wm.record(path):
        again = [ask(local_url, **sample) for _ in range(4)]
    assert [r.text for r in again[:3]] == first and [r.replayed for r in again] == [True, True, True, False]
    assert len(lines(path)) == 1 + 4  # the miss was sent and recorded; the replayed ones were not recorded again
    with wm.replay(path, strict=True):
        assert [ask(local_url, **sample).text for _ in range(4)] == [*first, again[3].text]


def test_replay_through_achat_compare_and_batch(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    kw = {"base_url": local_url, "max_tokens": 8, "progress": False}
    with wm.record(path):
        a = asyncio.run(wm.achat("async door", base_url=local_url, **THINK))
        c = wm.compare("compare door", models=["local/ngram", "local/ngram-thinking"], seed=[1, 2], **kw)
        b = wm.batch(["batch one", "batch two"], n=2, temperature=1.2, model="local/ngram", **kw)
    assert len(lines(path)) == 1 + 1 + 4 + 4
    with wm.replay(path, strict=True):
        a2 = asyncio.run(wm.achat("async door", base_url=local_url, **THINK))
        c2 = wm.compare("compare door", models=["local/ngram", "local/ngram-thinking"], seed=[1, 2], **kw)
        b2 = wm.batch(["batch one", "batch two"], n=2, temperature=1.2, model="local/ngram", **kw)
    assert a2.replayed and a2.text == a.text and a2.tokens().equals(a.tokens())
    assert list(c2["text"]) == list(c["text"]) and all(r.replayed for r in c2["response"])
    assert b["error"].isna().all() and len(set(b["text"])) > 2  # two samples of each prompt, differing
    assert list(b2["text"]) == list(b["text"]) and b2["error"].isna().all()  # each repeat gets its own answer back


def test_pace_recorded_streams_at_the_recorded_timing(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path):
        ask(local_url, headers={"X-Wcode-Fault": "stall_after=2, stall_s=0.4"})
    recorded = lines(path)[1]["events"]
    seen: list[tuple[float, str]] = []
    t0 = time.perf_counter()

    def on_event(ev):
        if ev.kind in ("reasoning", "content"):
            seen.append((time.perf_counter() - t0, ev.kind))

    with wm.replay(path, pace="recorded"):
        paced = ask(local_url, headers={"X-Wcode-Fault": "stall_after=2, stall_s=0.4"}, on_event=on_event)
    assert recorded[-1][0] > 0.4 and paced.replayed and time.perf_counter() - t0 >= recorded[-1][0] * 0.9
    kinds = [k for _, k in seen]
    assert kinds.index("content") > kinds.index("reasoning")  # thinking first, then the answer, as it happened
    with wm.replay(path):
        t1 = time.perf_counter()
        ask(local_url)
        assert time.perf_counter() - t1 < recorded[-1][0] / 2  # instant: no waiting


def test_bad_arguments_are_refused_by_name(tmp_path) -> None:
    with pytest.raises(wm.InvalidParameterError, match="pace takes 'instant' or 'recorded'"):
        wm.replay(tmp_path / "x.jsonl", pace="fast")
    with pytest.raises(wm.InvalidParameterError, match="strict takes True or False"):
        wm.replay(tmp_path / "x.jsonl", strict="yes")
    with pytest.raises(wm.InvalidParameterError, match="give the recording's file path"):
        wm.record(3)
    with pytest.raises(RecordingError, match="does not exist"):
        wm.record(tmp_path / "no" / "such" / "dir.jsonl")
    with pytest.raises(wm.InvalidParameterError, match="cache='yes' is not allowed: cache takes true or false"):
        wm.chat("hi", model="local/ngram", cache="yes")
    with pytest.raises(wm.InvalidParameterError, match="cache takes true or false"):
        wm.batch(["hi"], model="local/ngram", cache=1, progress=False)


# -- keys --------------------------------------------------------------------------------------------------------
def test_no_key_in_a_recording(tmp_path, local_url, replay, session) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path):
        ask(local_url, f"my key is {KEY}, keep it", api_key=KEY)
        wm.chat("hi", base_url=replay.base_url, api_key=KEY, headers={"X-Replay": "echo-key-stream"})
        with pytest.raises(wm.WcodeError):
            wm.chat("hi", base_url=replay.base_url, api_key=KEY, headers={"X-Replay-Status": "401"})
    text = path.read_text()
    assert len(lines(path)) == 4 and lines(path)[3]["error"]["class"] == "AuthenticationError"  # refused: recorded
    pieces = {KEY[i : i + 8] for i in range(len(KEY) - 7)}
    assert not [p for p in pieces if p in text], "a piece of the key is in the recording"
    assert "Authorization" not in text and "Bearer" not in text
    with wm.replay(path, strict=True):
        echoed = wm.chat("hi", base_url=replay.base_url, api_key=KEY, headers={"X-Replay": "echo-key-stream"})
        with pytest.raises(wm.AuthenticationError, match="HTTP 401") as refused:
            wm.chat("hi", base_url=replay.base_url, api_key=KEY, headers={"X-Replay-Status": "401"})
    assert echoed.replayed and KEY not in echoed.text and echoed.text.startswith("Your key: ")
    assert refused.value.status == 401 and KEY not in str(refused.value)


# -- cache -----------------------------------------------------------------------------------------------------------
def test_cache_serves_an_identical_completed_request_from_the_history(data_dir, local_url, counted_local) -> None:
    url = counted_local.base_url
    first = ask(url, cache=True)
    sent = counted_local.count
    second = ask(url, cache=True)
    assert counted_local.count == sent and second.cached and not first.cached
    assert (second.text, second.reasoning, second.usage.completion_tokens) == (
        first.text,
        first.reasoning,
        first.usage.completion_tokens,
    )
    assert second.tokens()[["token", "logprob"]].equals(first.tokens()[["token", "logprob"]])
    assert "cached (answered " in second.footer()
    ask(url, cache=True, seed=8)  # another request: sent
    assert counted_local.count == sent + 1
    ask(url)  # cache off (the session's default): sent
    assert counted_local.count == sent + 2
    frame = wm.history()
    assert list(frame["cached"]) == [False, True, False, False]
    assert frame["request_hash"].iloc[0] == frame["request_hash"].iloc[1] != frame["request_hash"].iloc[2]


def test_the_cache_setting_and_the_usage_saved(data_dir, local_url, session, monkeypatch) -> None:
    from wcode_magic.analysis import usage
    from wcode_magic.core import catalog

    monkeypatch.setattr(catalog.Model, "cost", lambda self, p, c: 0.001 * ((p or 0) + (c or 0)))  # a priced model
    usage._totals.clear()
    wm.configure(cache=True)
    first = wm.chat("A priced question", model="local/ngram", base_url=local_url, max_tokens=6, seed=3)
    second = wm.chat("A priced question", model="local/ngram", base_url=local_url, max_tokens=6, seed=3)
    assert second.cached and first.cost and second.cost == first.cost
    row = totals()["local/ngram"]
    assert row["calls"] == 2 and row["served"] == 1
    assert row["cost_cny"] == pytest.approx(first.cost) and row["saved_cny"] == pytest.approx(first.cost)


def test_a_rerun_batch_sends_only_what_is_missing(data_dir, counted_local) -> None:
    kw = {"base_url": counted_local.base_url, "model": "local/ngram", "max_tokens": 6, "progress": False}
    prompts = ["one", "two", "three", "four"]
    part = wm.batch(prompts[:2], n=2, temperature=1.3, cache=True, **kw)  # as if interrupted after two prompts
    sent = counted_local.count
    whole = wm.batch(prompts, n=2, temperature=1.3, cache=True, **kw)
    assert counted_local.count - sent == 4  # only "three" and "four", twice each
    assert list(whole["text"][:4]) == list(part["text"])  # the n repeats keep their own answers, in order
    assert [r.cached for r in whole["response"]] == [True] * 4 + [False] * 4


def test_a_batch_stopped_by_a_real_interrupt_resumes_with_only_what_is_missing(data_dir, counted_local) -> None:
    """A real SIGINT (what the kernel's interrupt sends) stops the batch; run again with cache=True, only the prompts
    that had not finished are sent, and the finished ones come back as they were."""
    import os
    import signal
    import threading

    kw = {"base_url": counted_local.base_url, "model": "local/ngram", "max_tokens": 3, "progress": False}
    prompts = [f"prompt {i}" for i in range(8)]
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.warns(wm.WcodeWarning, match="Interrupted"):
        part = wm.batch(prompts, concurrency=2, headers={"X-Wcode-Fault": "delay_ms=400"}, cache=True, **kw)
    timer.join()
    finished = len(part)
    assert part.attrs["interrupted"] and 0 < finished < len(prompts)
    sent = counted_local.count
    whole = wm.batch(prompts, concurrency=2, cache=True, **kw)
    assert len(whole) == len(prompts) and whole["complete"].all()
    assert counted_local.count - sent == len(prompts) - finished
    served = whole[[r.cached for r in whole["response"]]]
    assert sorted(served["prompt"]) == sorted(part["prompt"])
    assert dict(zip(served["prompt"], served["text"], strict=True)) == dict(
        zip(part["prompt"], part["text"], strict=True)
    )


def test_a_cache_lookup_uses_the_index(data_dir, local_url) -> None:
    ask(local_url, cache=True)
    conn = history.connect()
    try:
        plan = conn.execute("EXPLAIN QUERY PLAN " + history._CACHED, ("x", 0)).fetchall()
    finally:
        conn.close()
    assert "exchanges_request_hash" in str(plan)


def test_the_panel_records_and_replays_at_the_recorded_pace(tmp_path, session, local_url) -> None:
    from wcode_magic.notebook.panel import Panel

    path = tmp_path / "panel.jsonl"
    session.update(base_url=local_url, model="local/ngram-thinking")

    async def send(p, prompt):
        p.send(prompt)
        await p.wait()

    p = Panel()
    p.controls.controls["seed"].widget.value = "11"
    p.controls.controls["max_tokens"].widget.value = "120"
    try:
        with wm.record(path):
            asyncio.run(asyncio.wait_for(send(p, "Tell me about the river."), 60))
        live = p.response
        p.new_conversation()
        seen: list[int] = []
        p.thinking_text.observe(lambda _: seen.append(len(p.thinking_text.value)), names="value")
        with wm.replay(path, strict=True, pace="recorded"):
            asyncio.run(asyncio.wait_for(send(p, "Tell me about the river."), 60))
        again = p.response
        assert again.replayed and (again.text, again.reasoning) == (live.text, live.reasoning)
        assert p.state == "done" and "replayed (recorded " in p.status.value
        assert len(seen) > 1 and seen == sorted(seen)  # the thinking streamed into the panel, growing
    finally:
        p.close()


DEAD = "http://127.0.0.1:9/v1"  # nothing listens there: a request that went out would fail


def _live_and_replayed(transport, path, url, fault, **kw):
    """The exception a faulty call raised live (while recording) and on a strict replay (sending nothing)."""

    def run():
        headers = {"X-Wcode-Fault": fault} if fault else None
        if transport == "sync":
            return ask(url, headers=headers, **kw)
        return asyncio.run(wm.achat("What is a river?", base_url=url, headers=headers, **{**THINK, **kw}))

    with wm.record(path), pytest.raises(wm.WcodeError) as live:
        run()
    with wm.replay(path, strict=True), pytest.raises(wm.WcodeError) as again:
        run()
    return live.value, again.value


FAULTS = {
    "401": ("status=401", {}, wm.AuthenticationError),
    "429": ("status=429, retry_after=0", {}, wm.RateLimitError),
    "404": ("status=404", {}, wm.NotFoundError),
    "500 not streamed": ("status=500, retry_after=0", {"stream": False}, wm.ServerError),
    "error event": ("error_after=3", {}, wm.StreamError),
    "dropped": ("drop_after=3", {}, wm.StreamError),
    "malformed": ("malformed_after=2", {}, wm.StreamError),
}


@pytest.mark.parametrize("transport", ["sync", "async"])
@pytest.mark.parametrize("case", list(FAULTS))
def test_a_failed_exchange_is_recorded_and_replays_the_same_failure(tmp_path, local_url, session, case, transport):
    fault, kw, kind = FAULTS[case]
    session.update(max_retries=1)
    path = tmp_path / "r.jsonl"
    live, again = _live_and_replayed(transport, path, local_url, fault, **kw)
    assert type(live) is kind and type(again) is kind
    assert (again.message, str(again), again.status, again.body) == (live.message, str(live), live.status, live.body)
    assert getattr(again, "retry_after", None) == getattr(live, "retry_after", None)
    (line,) = lines(path)[1:]
    assert line["error"]["class"] == kind.__name__ and local_url not in path.read_text()
    if live.partial is None:
        assert again.partial is None and line["events"] == [] and wm.last().replayed
        assert wm.last().status == "error" and wm.last().error["type"] == kind.__name__
    else:  # what arrived before the failure comes back with it
        was, now = live.partial, again.partial
        assert now.replayed and not now.complete and now.status == was.status
        assert (now.text, now.reasoning) == (was.text, was.reasoning) and (was.text or was.reasoning)
        assert now.latency_s == pytest.approx(was.latency_s, abs=1e-4)


def test_an_unreachable_server_is_recorded_and_replays_as_unreachable(tmp_path, session) -> None:
    session.update(max_retries=0)
    live, again = _live_and_replayed("sync", tmp_path / "r.jsonl", DEAD, None)
    assert type(live) is type(again) is wm.APIConnectionError and str(again) == str(live)
    assert f"Could not reach {DEAD}" in str(again) and again.partial is None
    text = (tmp_path / "r.jsonl").read_text()
    assert DEAD not in text and "Could not reach {base_url}" in text  # no base_url in a recording, errors included


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_stopped_answer_is_recorded_and_replays_stopped(tmp_path, local_url, counted_local, transport) -> None:
    path = tmp_path / "r.jsonl"
    seen: list[str] = []
    live_run = [True]

    def stop(ev):
        if ev.kind == "content":
            seen.append(ev.value)
            if len(seen) == 3 and live_run[0]:  # the user stops it live; the replay stops by itself
                raise KeyboardInterrupt

    def run():
        seen.clear()
        if transport == "sync":
            return ask(counted_local.base_url, on_event=stop)
        return asyncio.run(wm.achat("What is a river?", base_url=counted_local.base_url, on_event=stop, **THINK))

    with wm.record(path), pytest.raises((wm.StoppedError, KeyboardInterrupt)) as live:
        run()
    sent = counted_local.count
    was = live.value.partial if isinstance(live.value, wm.StoppedError) else wm.last()
    assert was.stopped and was.reasoning and len(seen) == 3
    (line,) = lines(path)[1:]
    assert line["stopped"] is True and "error" not in line and line["events"]
    live_run[0] = False
    with wm.replay(path, strict=True), pytest.raises(wm.StoppedError) as again:
        run()
    now = again.value.partial
    assert counted_local.count == sent and str(again.value) == STOPPED
    assert now.replayed and now.stopped and now.status == "stopped" and now.error is None
    assert (now.text, now.reasoning) == (was.text, was.reasoning) and len(seen) == 3
    assert now.latency_s == pytest.approx(was.latency_s, abs=1e-4)


def test_a_recording_in_the_current_format_still_replays(tmp_path) -> None:
    """A format-1 file as written before failures were recorded (no "error" / "stopped" keys) replays as before."""
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "local/ngram",
        "choices": [{"index": 0, "delta": {"content": "Rivers flow."}, "finish_reason": None}],
    }
    end = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {**chunk, "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}}
    request = {"model": "local/ngram", "messages": [{"role": "user", "content": "What is a river?"}], "seed": 1}
    body = {
        **chunk,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Stars shine."}, "finish_reason": "stop"}],
    }
    star = {**request, "messages": [{"role": "user", "content": "What is a star?"}]}
    path = tmp_path / "old.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(doc)
            for doc in (
                {"wcode_recording": 1, "package": "0.1.0", "created": "2026-12-01T10:00:00Z"},
                {
                    "recorded_at": "2026-12-01T10:00:01Z",
                    "request": {**request, "stream": True, "stream_options": {"include_usage": True}},
                    "model": "local/ngram",
                    "status": "done",
                    "ttft_s": 0.01,
                    "latency_s": 0.02,
                    "events": [
                        [0.01, json.dumps(chunk)],
                        [0.015, json.dumps(end)],
                        [0.016, json.dumps(usage)],
                        [0.02, "[DONE]"],
                    ],
                },
                {
                    "recorded_at": "2026-12-01T10:00:02Z",
                    "request": {**star, "stream": False},
                    "model": "local/ngram",
                    "status": "done",
                    "ttft_s": 0.03,
                    "latency_s": 0.03,
                    "body": json.dumps(body),
                },
            )
        )
        + "\n"
    )
    with wm.replay(path, strict=True):
        r = wm.chat("What is a river?", model="local/ngram", seed=1, base_url=DEAD)
        s = wm.chat("What is a star?", model="local/ngram", seed=1, base_url=DEAD, stream=False)
    assert r.replayed and r.complete and r.text == "Rivers flow." and r.usage.total_tokens == 7 and r.ttft_s == 0.01
    assert s.replayed and s.complete and s.text == "Stars shine." and s.recorded_at == "2026-12-01T10:00:02Z"


def test_a_broken_answer_breaks_again(tmp_path, local_url) -> None:
    path = tmp_path / "r.jsonl"
    with wm.record(path), pytest.raises(wm.StreamError) as broken:
        ask(local_url, "What is a star?", headers={"X-Wcode-Fault": "error_after=3"})
    assert len(lines(path)) == 2  # the header and the broken exchange
    with wm.replay(path, strict=True), pytest.raises(wm.StreamError, match="mid-stream") as again:
        ask(local_url, "What is a star?", headers={"X-Wcode-Fault": "error_after=3"})
    assert again.value.partial.replayed and again.value.partial.text == broken.value.partial.text


def test_the_panel_replays_a_stopped_answer_as_stopped(tmp_path, session, local_url) -> None:
    from wcode_magic.notebook.panel import Panel

    path = tmp_path / "panel.jsonl"
    session.update(base_url=local_url, model="local/ngram-thinking")

    async def send(p, prompt, stop_after=None):
        p.send(prompt)
        while stop_after is not None and len(p.response.reasoning if p.response else "") < stop_after:
            await asyncio.sleep(0.005)
        if stop_after is not None:
            p.stop()
        await p.wait()

    p = Panel()
    p.controls.controls["seed"].widget.value = "5"
    p.controls.controls["max_tokens"].widget.value = "400"
    p.headers = {"X-Wcode-Fault": "stall_after=2, stall_s=30"}  # the Stop always lands mid-stream
    try:
        with wm.record(path):
            asyncio.run(asyncio.wait_for(send(p, "Tell me about the sea.", stop_after=20), 60))
        live = p.response
        assert p.state == "stopped" and live.stopped and live.reasoning and not live.complete
        assert lines(path)[1]["stopped"] is True
        p.new_conversation()
        with wm.replay(path, strict=True):
            asyncio.run(asyncio.wait_for(send(p, "Tell me about the sea."), 60))
        again = p.response
        assert p.state == "stopped" and again.replayed and again.stopped and "replayed (recorded " in p.status.value
        assert (again.text, again.reasoning) == (live.text, live.reasoning) and not p.error.value.strip()
    finally:
        p.close()
