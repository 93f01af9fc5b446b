"""A deadline for the whole call, and answers that run far past max_tokens (issue 17, item 7).

The gap timeout restarts with every byte; these streams always send some: keep-alive comments forever, a data
line that never ends, an answer that never ends. The bundled local server makes each (``X-Wcode-Fault``), over
HTTP, through both transports; each ends with a StreamError that keeps what arrived.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import wire

import wcode_magic as wm
from wcode_magic.core import errors


def ask(local_url: str, fault: str, **kw):
    kw = {"base_url": local_url, "model": "local/ngram", "headers": {"X-Wcode-Fault": fault}, **kw}
    return wm.chat("hi", **kw) if wire.TRANSPORT[0] == "sync" else asyncio.run(wm.achat("hi", **kw))


@pytest.mark.parametrize("fault", ["flood_after=3", "trickle_after=3", "endless", "stall_after=3, stall_s=60"])
def test_a_stream_that_never_ends_stops_at_the_deadline_with_its_partial(local_url, session, transport, fault):
    wm.configure(deadline=1.5)
    t0 = time.monotonic()
    with pytest.raises(errors.StreamError, match=r"deadline of 1\.5 s") as info:
        ask(local_url, fault, max_tokens=100000)
    took = time.monotonic() - t0
    r = info.value.partial
    assert 1.5 <= took < 3.0, took
    assert r is wm.last() and r.text and not r.complete and r.status == "incomplete"
    assert wm.history().iloc[-1]["text"] == r.text


@pytest.mark.parametrize("fault", ["flood_after=0", "endless", "delay_ms=60000"])
def test_a_plain_call_stops_at_the_deadline_too(local_url, session, transport, fault):
    t0 = time.monotonic()
    with pytest.raises(errors.WcodeError, match=r"deadline of 1 s|within 1 s"):
        ask(local_url, fault, stream=False, deadline=1)
    assert time.monotonic() - t0 < 2.5
    assert wm.last() is not None and not wm.last().complete


@pytest.mark.parametrize("max_tokens", [1, 20, 200])
def test_an_answer_far_past_max_tokens_is_stopped(local_url, session, transport, max_tokens):
    with pytest.raises(errors.StreamError, match=f"far past max_tokens={max_tokens}") as info:
        ask(local_url, "endless", max_tokens=max_tokens, deadline=None)
    r = info.value.partial
    assert r is wm.last() and r.text and not r.complete
    pieces = len(r.logprob_columns("content").tokens) if r.logprob_columns("content") else None
    assert pieces is None or pieces <= 2 * max_tokens + 17


def test_answers_within_their_limits_are_untouched(local_url, session, transport):
    r = ask(local_url, "keepalive", max_tokens=40, deadline=30)
    assert r.complete and r.usage.completion_tokens <= 40


@pytest.mark.parametrize("bad", [-1, 0, "10", float("nan"), float("inf"), True, [5]])
def test_a_bad_deadline_is_refused_before_anything_is_sent(local_url, session, bad):
    with pytest.raises(
        errors.InvalidParameterError,
        match=r"deadline=.* is not allowed: deadline takes a number of seconds from 0.1 to 86400, or None",
    ):
        wm.configure(deadline=bad)
    last = wm.last()
    with pytest.raises(errors.InvalidParameterError, match="deadline") as info:
        wm.chat("hi", base_url=local_url, model="local/ngram", deadline=bad)
    assert info.value.param == "deadline" and wm.last() is last


def test_the_session_deadline_is_a_setting(session):
    assert wm.SESSION.deadline == 600.0
    wm.configure(deadline=None)
    assert wm.SESSION.deadline is None
    wm.configure(deadline=90)
    assert wm.SESSION.deadline == 90.0
