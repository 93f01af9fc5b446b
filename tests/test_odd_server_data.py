"""Odd data from a server never costs the answer (issue 17, item 5; and redirects, item 13).

Every case goes over HTTP: the replay server sends the recorded odd bytes, through both transports. What arrived
is kept in ``.partial`` or the Response, ``wm.last()``, the history and the usage totals, never lost to a raw
TypeError or RecursionError after the answer arrived.
"""

from __future__ import annotations

import json
import warnings

import pytest
import wire
from wire import ask

import wcode_magic as wm
from wcode_magic.analysis import usage
from wcode_magic.core import errors


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("n", range(len(wire.ODD_USAGES)))
def test_usage_counts_that_are_no_counts_leave_the_answer_complete(replay, session, transport, stream, n):
    """Strings, lists, numbers past 2**64, negatives, booleans, details as a list: counts unknown, a warning."""
    name = f"odd_usage_{n}" if stream else f"odd_usage_whole_{n}"
    before = sum(row["calls"] for row in usage.totals().values())
    with pytest.warns(errors.WcodeWarning, match="not counts"):
        r = ask(replay, name, stream=stream)
    assert r.complete and r.text == "The answer" and r is wm.last()
    counts = (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens, r.usage.reasoning_tokens)
    assert all(c is None or (isinstance(c, int) and 0 <= c < 2**53) for c in counts)
    assert r.usage.odd
    r.cost, r.tokens_per_s, r.usage.answer_tokens  # noqa: B018  (no TypeError, no OverflowError)
    assert "The answer" in r._repr_markdown_() and r.footer()
    json.dumps(r.raw)
    assert wm.history().iloc[-1]["text"] == "The answer"
    assert sum(row["calls"] for row in usage.totals().values()) == before + 1


def test_good_usage_gives_no_warning(replay, session):
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.WcodeWarning)
        r = ask(replay, "usage_extras")
    assert r.usage.prompt_tokens == 40 and not r.usage.odd


@pytest.mark.parametrize("name", sorted(wire.DEEP))
def test_json_nested_too_deep_is_a_stream_error_keeping_the_answer(replay, session, transport, name):
    with pytest.raises(errors.StreamError, match="malformed") as info:
        ask(replay, name)
    r = info.value.partial
    assert r is wm.last() and r.text.startswith("The answer") and not r.complete
    json.dumps(r.raw)
    repr(r)
    assert wm.history().iloc[-1]["text"] == r.text


@pytest.mark.parametrize("name", sorted(wire.DEEP))
def test_a_whole_answer_nested_too_deep_is_an_error_not_a_recursion_error(replay, session, transport, name):
    with pytest.raises(errors.WcodeError) as info:
        ask(replay, name + "_whole", stream=False)
    assert not isinstance(info.value, RecursionError) and wm.last() is not None and not wm.last().complete
    json.dumps(wm.last().raw)


def test_finish_reason_error_without_an_error_object_is_no_complete_answer(replay, session, transport):
    with pytest.raises(errors.StreamError, match="finish_reason 'error'") as info:
        ask(replay, "finish_error_bare")
    r = info.value.partial
    assert r is wm.last() and r.text == "The answer" and not r.complete and r.finish_reason == "error"
    assert wm.history().iloc[-1]["complete"] == 0
    with pytest.raises(errors.ServerError, match="finish_reason 'error'") as info:
        ask(replay, "finish_error_bare_whole", stream=False)
    assert info.value.partial is wm.last() and wm.last().text == "The answer" and not wm.last().complete


def test_a_failing_observer_is_a_warning_not_the_loss_of_the_answer(replay, session):
    from wcode_magic.core import hooks

    def broken(response):
        raise RuntimeError("cannot store")

    hooks.after_call(broken)
    try:
        with pytest.warns(errors.WcodeWarning, match="cannot store"):
            r = ask(replay, "ark_r1")
    finally:
        hooks._observers.remove(broken)
    assert r.complete and r is wm.last()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_reported_as_one_and_not_followed(local_url, session, transport, status):
    wm.configure(api_key="sk-redirect-SECRET-0123456789")
    with pytest.raises(errors.ConfigurationError) as info:
        wire_ask_local(local_url, {"X-Wcode-Fault": f"redirect={status}"})
    message = str(info.value)
    assert message.startswith(f"HTTP {status}: {local_url} redirects to {local_url}/moved/chat/completions")
    assert "not followed" in message and "SECRET" not in message and info.value.status == status
    assert wm.last().status == "error"


def wire_ask_local(local_url: str, headers: dict[str, str], **kw):
    import asyncio

    kw = {"base_url": local_url, "model": "local/ngram", "max_tokens": 5, "headers": headers, **kw}
    return wm.chat("hi", **kw) if wire.TRANSPORT[0] == "sync" else asyncio.run(wm.achat("hi", **kw))


@pytest.mark.parametrize("n", range(4))
def test_logprob_bytes_that_are_no_list_of_bytes_are_not_sent(replay, session, transport, n):
    """A number where the byte list belongs (5, 10**12, a string, -1): the token string gives the text; no zero
    bytes, no MemoryError."""
    r = ask(replay, f"odd_bytes_{n}", logprobs=True, top_logprobs=1)
    assert r.complete and r.text == "Hi"
    tokens = r.tokens()
    assert list(tokens["token"]) == ["Hi"] and list(tokens["text"]) == ["Hi"]  # not "\x00" * 5
    assert r.alternatives()["token"].tolist() == ["Hi"]
