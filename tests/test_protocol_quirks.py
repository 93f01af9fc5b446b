"""protocol.md's quirks, each replayed byte for byte over real HTTP (tests/wire.py) through wm.chat, or folded
by the pure stream layer where only parsing is involved."""

from __future__ import annotations

import itertools
import time

import pytest
from wire import SSE_FIXTURES, ask, sse_chunks

import wcode_magic as wm
from wcode_magic.core import errors
from wcode_magic.core.stream import ThinkSplitter

_keys = itertools.count()


pytestmark = pytest.mark.usefixtures("transport")  # every test through wm.chat and wm.achat (conftest)


def failing(status, times, error=None):
    """Headers that make the replay server answer ``status`` to the first ``times`` requests of this test."""
    headers = {"X-Replay-Status": str(status), "X-Replay-Times": str(times), "X-Replay-Key": f"k{next(_keys)}"}
    if error:
        headers["X-Replay-Error"] = error
    return headers


@pytest.fixture
def fast_retries(session):
    wm.configure(max_retries=2, retry_cap_s=0.2)
    return session


# -- retries ------------------------------------------------------------------------------------------------
def test_409_is_retried_then_succeeds(replay, fast_retries):
    n = len(replay.requests)
    r = ask(replay, "ark_r1", headers=failing(409, 1))
    assert r.complete and r.text == "答案是 4。" and len(replay.requests) == n + 2


def test_409_still_failing_after_retries_is_a_server_error(replay, fast_retries):
    n = len(replay.requests)
    with pytest.raises(errors.ServerError, match="HTTP 409: the server reported a conflict") as info:
        ask(replay, "ark_r1", headers=failing(409, 99))
    assert info.value.status == 409 and len(replay.requests) == n + 3


def test_retry_after_ms_then_success(replay, fast_retries):
    headers = {**failing(429, 1, "openai_rate_limit"), "X-Replay-Retry-After-Ms": "150"}
    t = time.monotonic()
    r = ask(replay, "ark_r1", headers=headers)
    assert r.complete and time.monotonic() - t >= 0.14


# -- error bodies with a string code -------------------------------------------------------------------------
def test_a_string_error_code_is_read_like_an_integer_one(replay, session):
    n = len(replay.requests)
    with pytest.raises(errors.InvalidParameterError) as info:
        ask(replay, "ark_r1", headers={"X-Replay-Status": "400", "X-Replay-Error": "ark_logprobs"})
    e = info.value
    assert e.status == 400 and e.param == "logprobs" and e.body["error"]["code"] == "InvalidParameter"
    assert "does not support logprobs. Request id: 021755." in e.message
    assert len(replay.requests) == n + 1  # a 400 is final
    assert wm.last().status == "error" and wm.last().error["code"] == 400


def test_deepseek_r1_answering_logprobs_with_an_error(replay, session):
    with pytest.raises(errors.InvalidParameterError, match="the model deepseek-r1 does not support logprobs") as info:
        ask(
            replay,
            "ark_r1",
            model="r1",
            logprobs=True,
            top_logprobs=3,
            headers={"X-Replay-Status": "400", "X-Replay-Error": "ark_logprobs"},
        )
    assert info.value.param == "logprobs"
    sent = replay.requests[-1]
    assert sent["model"] == "deepseek-r1" and sent["logprobs"] is True  # sent as asked; the server said no


def test_a_string_code_mid_stream_keeps_the_partial(replay, session):
    with pytest.raises(errors.StreamError, match=r"unexpected internal error\. Request id: 021755\. Kept") as info:
        ask(replay, "string_code_midstream", model="r1")
    p = info.value.partial
    assert p.reasoning == "Let me" and p.error["code"] == "InternalServiceError" and p.status == "error"


# -- 200 answers that are no completion ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["html_200", "text_200"])
def test_a_200_body_that_is_neither_json_nor_sse(replay, session, name):
    with pytest.raises(errors.ServerError, match="not JSON") as info:
        ask(replay, name)
    assert "Traceback" not in info.value.message and len(info.value.message) < 400
    assert wm.last().status == "error"


@pytest.mark.parametrize("name", ["json_not_completion", "json_list"])
def test_a_200_json_body_that_is_no_chat_completion(replay, session, name):
    with pytest.raises(errors.ServerError, match="not a chat completion") as info:
        ask(replay, name)
    assert "Run again" in info.value.message or "base_url" in info.value.message
    assert wm.last().status == "error" and not wm.last().complete


def test_an_html_page_sent_as_event_stream(replay, session):
    with pytest.raises(errors.StreamError, match=r"without \[DONE\]"):
        ask(replay, "html_as_sse")


def test_an_event_that_is_json_but_no_object(replay, session):
    with pytest.raises(errors.StreamError, match="not a JSON object: '\\[1, 2\\]'") as info:
        ask(replay, "sse_non_object")
    assert info.value.partial.text == "a"


# -- reasoning shapes ------------------------------------------------------------------------------------------
def test_reasoning_summary_and_encrypted_details_are_kept_verbatim_not_counted(replay, session):
    r = ask(replay, "reasoning_details_kinds")
    assert r.complete and r.text == "4"
    assert r.reasoning == "Plan: add the numbers."  # once, from delta.reasoning; not again from the summary
    chunks = sse_chunks(SSE_FIXTURES["reasoning_details_kinds"])
    sent = [d for c in chunks for d in c["choices"][0]["delta"].get("reasoning_details", [])]
    assert r.reasoning_details == sent and [d["type"] for d in sent] == ["reasoning.summary", "reasoning.encrypted"]
    assert r.message["reasoning_details"] == sent and r.raw["choices"][0]["message"]["reasoning_details"] == sent
    assert "gAAAAB" not in r.reasoning + r.text + r._repr_markdown_()
    assert r.native_finish_reason == "completed" and r.usage.reasoning_tokens == 64


def test_one_delta_with_both_reasoning_fields_counts_once(replay, session):
    r = ask(replay, "both_reasoning_fields")
    assert r.reasoning == "Think twice?" and r.text == "No."


# -- usage extras ----------------------------------------------------------------------------------------------
def test_usage_extras_are_kept(replay, session):
    r = ask(replay, "usage_extras", model="deepseek/some-unpriced-model")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (40, 1, 41)
    assert r.usage.raw["prompt_cache_hit_tokens"] == 32 and r.usage.raw["cost"] == pytest.approx(0.0000231)
    assert r.raw["usage"] == r.usage.raw  # as sent, extras included
    assert r.usage.answer_tokens == 1 and "tokens 40 in" in r.footer()
    assert r.cost is None  # not a catalog model: no made-up CNY price from the provider's own cost


# -- llama.cpp logprobs ----------------------------------------------------------------------------------------
def test_llamacpp_token_ids_on_logprob_entries_are_ignored_cleanly(replay, session):
    r = ask(replay, "llamacpp_logprobs", logprobs=True, top_logprobs=2)
    assert r.complete and r.text == "Hello" and r.logprobs_status == "sent"
    assert [e["token"] for e in r.logprobs] == ["Hel", "lo"]
    assert r.logprobs[0]["top_logprobs"][1]["token"] == "Hi"
    df = r.tokens()
    assert df["token"].tolist() == ["Hel", "lo"] and "id" not in df.columns
    assert r.alternatives()["token"].tolist()[:2] == ["Hel", "Hi"]
    assert "Hel" in r.show_tokens()._repr_html_()
    assert r.raw["choices"][0]["logprobs"]["content"][0]["id"] == 9707  # kept as sent in the raw body
    assert r._extra["timings"]["predicted_n"] == 2


# -- /no_think -------------------------------------------------------------------------------------------------
def test_no_think_empty_think_block_streamed(replay, session):
    r = ask(replay, "no_think", model="qwen3")
    assert r.complete and r.text == "2 + 2 = 4." and r.reasoning == ""
    assert "Thinking" not in r._repr_markdown_()


def test_no_think_empty_think_block_whole(replay, session):
    r = ask(replay, "no_think_whole", model="qwen3", stream=False)
    assert r.complete and r.text == "2 + 2 = 4." and r.reasoning == ""


@pytest.mark.parametrize("cut", range(1, 22))
def test_an_empty_think_block_cut_anywhere(cut):
    whole = "<think>\n\n</think>\n\nAnswer."
    s = ThinkSplitter()
    events = s.feed(whole[:cut]) + s.feed(whole[cut:]) + s.flush()
    assert [e.kind for e in events] == ["content"] * len(events)
    assert "".join(e.value for e in events) == "Answer."


def test_a_think_block_keeps_its_text_but_not_its_leading_blank_lines():
    s = ThinkSplitter()
    events = s.feed("<think>\n") + s.feed("\nStep one.\n") + s.feed("</think>\n\nDone.") + s.flush()
    assert "".join(e.value for e in events if e.kind == "reasoning") == "Step one.\n"
    assert "".join(e.value for e in events if e.kind == "content") == "Done."
