"""wm.compare / wm.batch against the local model over real HTTP (fault header in test mode)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid

import pandas as pd
import pytest

import wcode_magic as wm
from wcode_magic.core.errors import InvalidParameterError, WcodeWarning

FAULT = "X-Wcode-Fault"


@pytest.fixture(autouse=True)
def local_model(session):
    """Every sweep here talks to the bundled local model (the session setting is restored after each test)."""
    wm.configure(model="local/ngram")


@pytest.fixture
def no_retries(session):
    """Retries off for this test only (the ``session`` fixture restores the settings afterwards)."""
    wm.configure(max_retries=0)
    yield


def test_compare_runs_the_whole_grid(local_url):
    df = wm.compare(
        "Tell me about the sea",
        models=["local/ngram", "local"],
        temperature=[0.3, 1.2],
        seed=[1, 2],
        n=2,
        base_url=local_url,
        max_tokens=12,
        progress=False,
    )
    assert len(df) == 2 * 2 * 2 * 2
    assert list(df.columns[:5]) == ["model", "temperature", "seed", "run", "text"]
    assert df.groupby(["model", "temperature", "seed"]).size().tolist() == [2] * 8
    assert df["complete"].all() and df["error"].isna().all()
    assert (df["completion_tokens"] > 0).all() and df["latency_s"].notna().all()
    assert all(r.request["temperature"] == t for r, t in zip(df["response"], df["temperature"], strict=True))
    # the same seed and temperature give the same text, whatever the alias and the run
    assert df.groupby(["temperature", "seed"])["text"].nunique().eq(1).all()
    assert df.attrs["failed"] == 0 and not df.attrs["interrupted"]


def test_concurrency_really_overlaps_requests(local_url):
    delayed = {FAULT: "delay_ms=400"}
    t0 = time.perf_counter()
    wide = wm.batch(["a b"] * 8, concurrency=8, headers=delayed, base_url=local_url, max_tokens=3, progress=False)
    t_wide = time.perf_counter() - t0
    t0 = time.perf_counter()
    narrow = wm.batch(["a b"] * 4, concurrency=1, headers=delayed, base_url=local_url, max_tokens=3, progress=False)
    t_narrow = time.perf_counter() - t0
    assert wide["complete"].all() and narrow["complete"].all()
    assert t_narrow >= 4 * 0.4  # one at a time: the delays add up
    assert t_wide < 2 * 0.4 + 0.6, f"8 delayed requests at concurrency 8 took {t_wide:.2f} s"
    assert (wide["latency_s"] >= 0.4).all()


def test_a_failing_cell_becomes_an_error_row(local_url, no_retries):
    headers = {FAULT: "status=500,times=1", "X-Wcode-Fault-Key": uuid.uuid4().hex}
    df = wm.batch(["one", "two", "three"], concurrency=1, headers=headers, base_url=local_url, progress=False)
    assert len(df) == 3
    assert "ServerError" in df["error"][0] and "500" in df["error"][0]
    assert not df["complete"][0] and df["text"][0] == ""
    assert df["response"][0].status == "error" and "500" in df["response"][0].error["message"]  # kept, marked error
    assert df["error"][1:].isna().all() and df["complete"][1:].all()
    assert df.attrs["failed"] == 1


def test_a_broken_stream_keeps_its_partial_text(local_url, no_retries):
    df = wm.batch(["sea"], headers={FAULT: "error_after=3"}, base_url=local_url, max_tokens=20, progress=False)
    assert "StreamError" in df["error"][0] and df["text"][0] and not df["complete"][0]


def test_batch_over_series_and_dataframe_keeps_the_index(local_url):
    s = pd.Series({"q1": "The sea", "q2": "The stars"})
    by_series = wm.batch(s, base_url=local_url, max_tokens=5, seed=1, progress=False)
    assert list(by_series.index) == ["q1", "q2"] and by_series["prompt"].tolist() == ["The sea", "The stars"]
    frame = pd.DataFrame({"id": [10, 11], "question": ["The sea", "The stars"]}, index=[5, 7])
    by_column = wm.batch(frame, column="question", base_url=local_url, max_tokens=5, seed=1, progress=False)
    assert list(by_column.index) == [5, 7]
    assert by_column["text"].tolist() == by_series["text"].tolist()
    with pytest.raises(InvalidParameterError, match="column"):
        wm.batch(frame, base_url=local_url)
    messages = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The sea"}]]
    assert wm.batch(messages, base_url=local_url, max_tokens=3, progress=False)["prompt"].tolist() == ["The sea"]


def test_runs_of_one_prompt_report_where_they_diverge(local_url):
    df = wm.batch(
        ["Tell me about the sea"],
        n=3,
        temperature=1.5,
        base_url=local_url,
        max_tokens=25,
        logprobs=True,
        progress=False,
    )
    tokens = [[e["token"] for e in r.logprobs] for r in df["response"]]
    expected = 0
    while all(len(t) > expected for t in tokens) and len({t[expected] for t in tokens}) == 1:
        expected += 1
    if len({tuple(t) for t in tokens}) > 1:
        assert df["diverge_token"].tolist() == [expected] * 3
        assert df["diverge_char"].notna().all()
    same = wm.compare("The sea", seed=[4], n=2, base_url=local_url, max_tokens=10, logprobs=True, progress=False)
    assert same["diverge_token"].isna().all() and same["diverge_char"].isna().all()


def test_sweeping_reasoning_keeps_both_the_setting_and_the_thinking(local_url):
    # "reasoning" is a request parameter and a result column (the thinking text): both must survive
    settings = [{"enabled": False}, {"effort": "low"}, {"effort": "high"}]
    df = wm.compare(
        "Why is the sky blue?",
        models="local/ngram-thinking",
        seed=3,
        grid={"reasoning": settings},
        base_url=local_url,
        max_tokens=160,  # room for high effort (128 tokens of thinking on the local model) and an answer
        progress=False,
    )
    assert df["reasoning_param"].tolist() == settings
    assert all(r.request["reasoning"] == s for r, s in zip(df["response"], settings, strict=True))
    assert df["reasoning"].tolist() == [r.reasoning for r in df["response"]]
    assert df["reasoning"].iloc[0] == "" and df["reasoning"].iloc[1] != ""
    assert df["reasoning_tokens"].tolist()[0] == 0 and df["reasoning_tokens"].iloc[2] > df["reasoning_tokens"].iloc[1]


def test_bad_input_fails_before_anything_is_sent(local_url):
    before = wm.last()
    with pytest.raises(InvalidParameterError, match="temperature"):
        wm.compare("hi", temperature=[0.5, 9.0], base_url=local_url, progress=False)
    with pytest.raises(InvalidParameterError, match=r"concurrency=0.*1 to 64"):
        wm.batch(["a"], concurrency=0, base_url=local_url)
    with pytest.raises(InvalidParameterError, match="prompts"):
        wm.batch("just one string", base_url=local_url)
    with pytest.raises(InvalidParameterError, match="models="):
        wm.compare("hi", models=["local"], model="local", base_url=local_url)
    assert wm.last() is before


def test_interrupt_returns_the_finished_rows(local_url):
    # a real SIGINT, as the kernel's interrupt sends: it wakes the main thread from its wait
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.warns(WcodeWarning, match="Interrupted"):
        df = wm.batch(
            [f"p{i}" for i in range(8)],
            concurrency=2,
            headers={FAULT: "delay_ms=400"},
            base_url=local_url,
            max_tokens=3,
            progress=False,
        )
    timer.join()
    assert df.attrs["interrupted"] and 0 < len(df) < 8
    assert df["complete"].all()  # only finished runs, each whole


def test_async_variants_and_a_call_from_inside_a_running_loop(local_url):
    async def main():
        awaited = await wm.acompare("The sea", seed=[1, 2], base_url=local_url, max_tokens=5, progress=False)
        # a notebook cell calls the sync API while its loop runs: it must not need nest_asyncio
        blocking = wm.batch(["The sea"], seed=1, base_url=local_url, max_tokens=5, progress=False)
        return awaited, blocking

    awaited, blocking = asyncio.run(main())
    assert len(awaited) == 2 and awaited["complete"].all()
    assert blocking["text"][0] == awaited["text"][0]


def test_async_cancellation_returns_what_finished(local_url):
    async def main():
        task = asyncio.ensure_future(
            wm.abatch(
                [f"p{i}" for i in range(6)],
                concurrency=2,
                headers={FAULT: "delay_ms=400"},
                base_url=local_url,
                max_tokens=3,
                progress=False,
            )
        )
        await asyncio.sleep(1.0)
        task.cancel()
        return await task

    with pytest.warns(WcodeWarning, match="Interrupted"):
        df = asyncio.run(main())
    assert 0 < len(df) < 6 and df.attrs["interrupted"]


@pytest.mark.parametrize("how", ["interrupted batch", "cancelled acompare"])
def test_runs_stopped_while_answering_keep_their_rows(local_url, how):
    # each run sends two tokens, then stalls: when the sweep is stopped, the two running have begun to answer
    kw = {"concurrency": 2, "headers": {FAULT: "stall_after=2"}, "base_url": local_url, "max_tokens": 20}
    with pytest.warns(WcodeWarning, match="finished, and the 2 stopped while answering"):
        if how == "interrupted batch":
            timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            df = wm.batch([f"p{i}" for i in range(4)], progress=False, **kw)
            timer.join()
        else:

            async def main():
                task = asyncio.ensure_future(wm.acompare("The sea", seed=[1, 2, 3, 4], progress=False, **kw))
                await asyncio.sleep(1.0)
                task.cancel()
                return await task

            df = asyncio.run(main())
    assert len(df) == 2 and df.attrs["stopped"] == 2 and df.attrs["finished"] == 0 and df.attrs["interrupted"]
    assert not df["complete"].any() and df["error"].isna().all()
    assert all(
        r.stopped and r.status == "stopped" and r.text == text
        for r, text in zip(df["response"], df["text"], strict=True)
    )
    assert (df["text"].str.len() > 0).all()


def test_progress_bar_in_a_terminal(local_url, capsys):
    wm.batch(["a", "b"], base_url=local_url, max_tokens=2)
    assert "2/2" in capsys.readouterr().err


def test_in_a_real_kernel_sync_await_progress_widget_and_interrupt(tmp_path):
    """A notebook cell: its loop is running, there is no nest_asyncio, and the stop button sends SIGINT."""
    from magics_kernel import Kernel

    k = Kernel(str(tmp_path))
    try:
        k.ok("import wcode_magic as wm, sys\nwm.use_local()")
        run = k.ok("df = wm.batch(['The sea', 'The stars'], max_tokens=5)\nprint(len(df), df['complete'].all())")
        assert run.stdout.strip() == "2 True"
        assert "nest_asyncio" not in k.value("sorted(sys.modules)")
        widgets = [d for d in run.displays if "application/vnd.jupyter.widget-view+json" in d]
        assert widgets, "tqdm.auto shows a progress widget in a notebook"
        # a saved notebook without the widget state shows the text fallback: it must end at the final count
        assert "2/2" in widgets[-1]["text/plain"] and "0/2" in widgets[0]["text/plain"]
        assert run.of("update_display_data"), "updated in place, not shown twice"
        run = k.ok("adf = await wm.acompare('The sea', seed=[1, 2], max_tokens=5)\nprint(len(adf))")
        assert run.stdout.strip() == "2"
        started = time.monotonic()
        run = k.run(
            "part = wm.batch([f'p{i}' for i in range(12)], concurrency=2, max_tokens=3,\n"
            "                headers={'X-Wcode-Fault': 'delay_ms=400'})\n"
            "print('ROWS', len(part), part.attrs['interrupted'])",
            interrupt_when=lambda r: time.monotonic() > started + 1.5,
            timeout=30,
        )
        assert run.status == "ok", run.error
        rows, interrupted = run.stdout.split()[1:]
        assert 0 < int(rows) < 12 and interrupted == "True"
        assert "Interrupted" in run.stderr
    finally:
        k.close()
