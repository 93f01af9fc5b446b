"""The client's whole path (HTTP, SSE framing, parsing, folding, errors) against recorded provider bytes,
served over real HTTP on 127.0.0.1 by the replay server."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest
import wire
from wire import ask

import wcode_magic as wm
from wcode_magic.core import errors
from wcode_magic.core.settings import SESSION

pytestmark = pytest.mark.usefixtures("transport")  # every test through wm.chat and wm.achat (conftest)


def test_openrouter_stream(replay, session):
    events = []
    r = ask(replay, "openrouter_reasoning", model="r1-qwen3-8b", on_event=events.append)
    assert r.complete and r.status == "done"
    assert (r.reasoning, r.text) == ("Okay, the user asks 2+2.", "4")
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and events[0].value is r
    assert kinds.index("reasoning") < kinds.index("content") < kinds.index("finish") < kinds.index("usage")
    assert r.ttft_s is not None and r.latency_s >= r.ttft_s
    sent = replay.requests[-1]
    assert sent["model"] == "deepseek/deepseek-r1-0528-qwen3-8b"  # alias resolved
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert r.request == sent


def test_ark_stream_and_cost(replay, session):
    r = ask(replay, "ark_r1", model="r1")
    assert r.reasoning == "嗯，用户问的是" and r.text == "答案是 4。" and r.cost > 0


def test_think_inline_keepalive_and_done_without_blank_line(replay, session):
    r = ask(replay, "think_inline", model="qwen3")
    assert r.complete and r.reasoning == "plan the" and r.text == "Final <think> stays"


def test_midstream_error_keeps_partial(replay, session):
    with pytest.raises(errors.StreamError) as info:
        ask(replay, "midstream_error")
    partial = info.value.partial
    assert partial.text == "The answer" and partial.reasoning == "Thinking first."
    assert not partial.complete and partial.status == "error" and partial.finish_reason == "error"
    assert "Provider disconnected unexpectedly. Kept 10 characters of answer" in str(info.value)
    assert wm.last() is partial


def test_stream_without_done_is_incomplete(replay, session):
    with pytest.raises(errors.StreamError, match="without \\[DONE\\]") as info:
        ask(replay, "no_done")
    assert info.value.partial.text == "cut off" and not info.value.partial.complete


def test_malformed_event(replay, session):
    with pytest.raises(errors.StreamError, match="malformed") as info:
        ask(replay, "malformed")
    assert info.value.partial.text == "before "


def test_logprobs_in_stream(replay, session):
    r = ask(replay, "logprobs", logprobs=True, top_logprobs=2)
    assert [e["token"] for e in r.logprobs] == ["Hello", "!"]
    assert r.logprobs[0]["top_logprobs"][1] == {"token": "Hi", "logprob": -3.52, "bytes": [72, 105]}
    assert r.logprobs_status == "sent"


def test_logprobs_ignored_by_provider_is_reported(replay, session):
    r = ask(replay, "logprobs_ignored", logprobs=True)
    assert r.text == "Yes" and r.logprobs == [] and r.logprobs_status in ("empty", "null")


def test_tool_calls(replay, session):
    r = ask(replay, "tool_calls", tools=[{"type": "function", "function": {"name": "get_weather"}}])
    assert r.tool_calls[0]["function"]["arguments"] == '{"city": "Paris"}'
    assert r.message["tool_calls"] == r.tool_calls


@pytest.mark.parametrize("name", ["seed_deepseek_r1", "seed_r1_qwen3_8b", "seed_r1_distill_32b"])
def test_non_streamed_seed_answers(replay, session, name):
    r = ask(replay, name, stream=False)
    assert r.complete and r.text and r.reasoning
    assert replay.requests[-1]["stream"] is False and "stream_options" not in replay.requests[-1]


@pytest.mark.parametrize(
    "status,exc,words",
    [
        (400, errors.InvalidParameterError, "rejected"),
        (401, errors.AuthenticationError, "%wcode key"),
        (403, errors.AuthenticationError, "refused the request"),
        (402, errors.InsufficientCreditError, "out of credit"),
        (404, errors.NotFoundError, "not found"),
        (422, errors.InvalidParameterError, "rejected"),
    ],
)
def test_error_statuses_before_the_stream(replay, session, status, exc, words):
    n = len(replay.requests)
    with pytest.raises(exc, match=words) as info:
        wm.chat("hi", base_url=replay.base_url, headers={"X-Replay-Status": str(status)})
    assert info.value.status == status and f"replayed {status}" in str(info.value)
    assert len(replay.requests) == n + 1  # not retried


def test_403_words_follow_the_servers_message(replay, session):
    def refusal(error):
        with pytest.raises(errors.AuthenticationError) as info:
            ask(replay, "ark_r1", headers={"X-Replay-Status": "403", "X-Replay-Error": error})
        return info.value.message

    moderation = refusal("openrouter_moderation")
    assert "Input was flagged by moderation: violence." in moderation and "API key" not in moderation
    bad_key = refusal("bad_key_403")
    assert "API key was refused" in bad_key and "WCODE_API_KEY" in bad_key
    assert "Invalid API key provided. Set it with" in bad_key


def test_retry_after_ms_is_honoured_and_shown_with_a_decimal(replay, session):
    wm.configure(max_retries=1, retry_cap_s=5)
    n = len(replay.requests)
    headers = {"X-Replay-Status": "429", "X-Replay-Error": "openai_rate_limit", "X-Replay-Retry-After-Ms": "300"}
    t = time.monotonic()
    with pytest.raises(errors.RateLimitError) as info:
        ask(replay, "ark_r1", headers=headers)
    assert 0.25 <= time.monotonic() - t < 2  # waited the 0.3 s asked for, not the jittered backoff
    assert len(replay.requests) == n + 2 and info.value.retry_after == pytest.approx(0.3)
    assert "It asked to wait 0.3 s." in info.value.message
    assert "Please try again in 300ms. Wait a little" in info.value.message


def test_invalid_parameters_are_rejected_before_sending(replay, session):
    n = len(replay.requests)
    with pytest.raises(errors.InvalidParameterError, match="temperature=5"):
        ask(replay, "ark_r1", temperature=5)
    with pytest.raises(errors.InvalidParameterError, match="Did you mean 'max_tokens'"):
        ask(replay, "ark_r1", max_token=5)
    with pytest.raises(errors.InvalidParameterError, match="max_tokens=100000 is more than deepseek-r1's context"):
        ask(replay, "ark_r1", model="r1", max_tokens=100_000)
    for typo, meant in (("modle", "model"), ("sytem", "system"), ("base_ulr", "base_url"), ("extra_bdy", "extra_body")):
        with pytest.raises(errors.InvalidParameterError, match=f"Did you mean '{meant}'"):
            ask(replay, "ark_r1", **{typo: "x"})
    assert len(replay.requests) == n


def test_session_defaults_merge_under_call_params(replay, session):
    wm.configure(temperature=0.3, top_k=4, system="Be brief.")
    ask(replay, "ark_r1", model="qwen3", top_k=9)
    sent = replay.requests[-1]
    assert sent["temperature"] == 0.3 and sent["top_k"] == 9
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_reasoner_warning(replay, session):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ask(replay, "ark_r1", model="r1", temperature=0.2)
    assert any("ignores temperature" in str(w.message) for w in caught)


def test_the_stored_key_goes_only_to_wcode(replay, session, monkeypatch):
    monkeypatch.setenv("WCODE_API_KEY", "sk-test-NEVER-LEAK-1234567890")
    ask(replay, "ark_r1")
    assert "authorization" not in replay.headers[-1]
    ask(replay, "ark_r1", api_key="sk-explicit-abcdefghijklmnop")
    assert replay.headers[-1]["authorization"] == "Bearer sk-explicit-abcdefghijklmnop"
    r = ask(replay, "ark_r1", api_key="sk-explicit-abcdefghijklmnop")
    assert "sk-explicit" not in repr(r.request) + repr(r) + r._repr_markdown_() + repr(r.raw)


def test_no_key_for_wcode_is_said_before_anything_is_sent(session, monkeypatch, tmp_path):
    monkeypatch.delenv("WCODE_API_KEY", raising=False)
    monkeypatch.setenv("WCODE_CONFIG_DIR", str(tmp_path))  # no key file either
    before = wm.last()
    for call in (lambda: wm.chat("hi", model="r1"), lambda: asyncio.run(wm.achat("hi", model="v3.1"))):
        with pytest.raises(errors.AuthenticationError, match=r"No API key for wcode\.net.*%wcode key.*WCODE_API_KEY"):
            call()
    assert wm.last() is before


def test_achat_inside_a_running_loop(replay, session):
    async def main():
        return await asyncio.gather(
            *(wm.achat("hi", base_url=replay.base_url, headers={"X-Replay": "ark_r1"}) for _ in range(5))
        )

    results = asyncio.run(main())
    assert [r.text for r in results] == ["答案是 4。"] * 5


FAKE_KEY = "sk-test-ECHOED-0123456789abcdef"


def _nowhere(key: str, *texts: str) -> None:
    """``key`` appears in none of ``texts``, nor in the history kept so far."""
    for text in texts:
        assert key not in text
    assert key not in wm.history().astype(str).to_csv()


@pytest.mark.parametrize("how", ["explicit", "configure"])
def test_a_key_the_server_echoes_is_masked_in_the_error_and_history(replay, session, how):
    kw = {"api_key": FAKE_KEY} if how == "explicit" else {}
    if how == "configure":
        wm.configure(base_url=replay.base_url, api_key=FAKE_KEY, max_retries=0)
    with pytest.raises(errors.AuthenticationError) as caught:
        ask(replay, "ark_r1", headers={"X-Replay-Status": "401", "X-Replay-Error": "echo-key"}, **kw)
    assert replay.headers[-1]["authorization"] == f"Bearer {FAKE_KEY}"  # it was sent, and echoed
    e = caught.value
    assert "invalid token sk-…ef" in e.message  # the server's words kept, the key masked
    _nowhere(FAKE_KEY, str(e), repr(e), e.message, repr(e.body), repr(wm.last().error), repr(wm.last().raw))


@pytest.mark.parametrize("how", ["explicit", "configure"])
def test_a_key_with_a_trailing_newline_is_stripped(replay, session, how):
    key = FAKE_KEY + "\n"  # wm.configure(api_key=open(path).read())
    if how == "configure":
        wm.configure(base_url=replay.base_url, api_key=key)
    r = ask(replay, "ark_r1", **({"api_key": key} if how == "explicit" else {}))
    assert r.complete and replay.headers[-1]["authorization"] == f"Bearer {FAKE_KEY}"


@pytest.mark.parametrize("inner", ["\n", "\r", " ", "\t", "\u200b", "é", "\x00"])
@pytest.mark.parametrize("how", ["explicit", "configure"])
def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(replay, session, how, inner):
    key = FAKE_KEY[:12] + inner + FAKE_KEY[12:]
    sent = len(replay.requests)
    with pytest.raises(errors.InvalidParameterError, match="api_key is not allowed") as caught:
        if how == "configure":
            wm.configure(base_url=replay.base_url, api_key=key)
        ask(replay, "ark_r1", api_key=key)
    e = caught.value
    assert e.param == "api_key" and e.value is None
    _nowhere(FAKE_KEY[12:], str(e), repr(e))
    assert len(replay.requests) == sent  # refused before sending


def test_a_configured_key_stays_with_its_server(replay, session, monkeypatch, local_url):
    from wcode_magic.core.settings import WCODE_BASE_URL
    from wcode_magic.notebook import commands

    monkeypatch.setenv("WCODE_API_KEY", "sk-test-STORED-WCODE-0000")
    other = "sk-test-OTHER-SERVER-1111"
    wm.configure(base_url=replay.base_url, api_key=other)
    ask(replay, "ark_r1")
    assert replay.headers[-1]["authorization"] == f"Bearer {other}"
    for switch in (wm.use_wcode, lambda: commands.dispatch("use wcode"), wm.auto):
        switch()
        assert session.base_url == WCODE_BASE_URL
        assert session.key_for(WCODE_BASE_URL, None).reveal() == "sk-test-STORED-WCODE-0000"
    wm.use_local()
    assert session.key_for(session.base_url, None) is None
    wm.configure(base_url=replay.base_url)  # back to the key's own server: it goes there again
    ask(replay, "ark_r1")
    assert replay.headers[-1]["authorization"] == f"Bearer {other}"
    wm.configure(base_url=local_url, api_key="sk-test-LOCAL-KEY-2222")  # a key for the local server ...
    ask(replay, "ark_r1")  # ... is not sent to another one
    assert "authorization" not in replay.headers[-1]
    wm.configure(base_url=None, api_key="sk-test-NO-SERVER-3333")  # configured with no server: the default one
    assert session.key_for(WCODE_BASE_URL, None).reveal() == "sk-test-NO-SERVER-3333"
    ask(replay, "ark_r1", base_url=replay.base_url)  # a per-call server is not the key's home (issue 17.3)
    assert "authorization" not in replay.headers[-1]
    assert "sent to https://wcode.net/api/gpt/v1 only" in commands.dispatch("config")
    wm.use_local()  # not a configure: the key still waits for its server, and does not go to the local one
    assert session.key_for(session.base_url, None) is None
    wm.configure(base_url=replay.base_url)  # key first, then URL: the two-step setup of one server
    ask(replay, "ark_r1")
    assert replay.headers[-1]["authorization"] == "Bearer sk-test-NO-SERVER-3333"
    assert f"sent to {replay.base_url} only" in commands.dispatch("config")
    wm.configure(base_url=local_url)  # a second server later does not get it
    assert session.key_for(local_url, None) is None


def test_a_wcode_model_after_use_local_goes_to_wcode_from_every_entry_point(replay, session, monkeypatch):
    """The bundled local server serves only local/* models: wm.chat/achat/compare follow the rule %%chat and the
    panel follow (Settings.route), and a wcode model goes to wcode.net (here WCODE_BASE_URL, the replay server)."""
    from wcode_magic.core import catalog

    monkeypatch.setenv("WCODE_BASE_URL", replay.base_url)
    local_url = wm.use_local()
    r1 = catalog.resolve("r1")
    assert SESSION.route(r1) == replay.base_url
    r = ask(replay, "ark_r1", base_url=None, model="r1")
    assert r.complete and r.base_url == replay.base_url and replay.requests[-1]["model"] == r1
    sent = len(replay.requests)
    frame = wm.compare("hi", models=["local", "r1"], max_tokens=3, headers={"X-Replay": "ark_r1"})
    assert frame["error"].isna().all() and len(replay.requests) == sent + 1
    assert session.resolve_base_url(None, "local/ngram") == local_url


@pytest.mark.parametrize(
    ("base_url", "bundled"),
    [
        (None, True),  # no server configured: the local model's own
        ("https://example.com/v1", True),  # another machine cannot serve local/* ids
        ("http://127.0.0.1:9/v1", False),  # a loopback server may be `wcode-magic serve`: it gets them
        ("http://localhost:9/v1", False),
    ],
)
def test_where_a_local_model_goes_is_one_rule_for_calls_and_the_panel(session, local_url, base_url, bundled):
    """``Settings.goes_to_bundled`` decides for ``route``, ``resolve_base_url``, the panel's route note
    (``destination``, which starts nothing) and ``%wcode config``'s key line."""
    session.update(base_url=base_url)
    assert session.goes_to_bundled("local/ngram") is bundled and not session.goes_to_bundled("r1")
    where = session.destination("local/ngram")
    assert where == (local_url if bundled else base_url)  # the bundled n-gram server runs (local_url started it)
    assert session.resolve_base_url(None, "local/ngram") == where


@pytest.mark.parametrize("n", range(len(wire.WRONG_SHAPES)))
def test_a_json_object_of_the_wrong_shape_is_a_stream_error(replay, session, n):
    """``{"choices":[null]}``, ``"delta":"x"``, ``"content":5``...: a StreamError keeping what arrived, and the
    Response notified (wm.last(), history) like any other failure; not an AttributeError from deep inside."""
    with pytest.raises(errors.StreamError, match="malformed") as info:
        ask(replay, f"wrong_shape_{n}", logprobs=True)
    r = info.value.partial
    assert r is wm.last() and r.text.startswith("before ") and not r.complete and r.status == "incomplete"
    r.logprobs  # noqa: B018  (readable)
    assert wm.history().iloc[-1]["text"] == r.text


@pytest.mark.parametrize("n", range(len(wire.WRONG_SHAPES)))
def test_a_whole_answer_of_the_wrong_shape_is_a_stream_error(replay, session, n):
    with pytest.raises(errors.StreamError, match="malformed") as info:
        ask(replay, f"wrong_shape_whole_{n}", stream=False, logprobs=True)
    assert info.value.partial is wm.last() and not wm.last().complete


def test_an_echo_cut_off_inside_the_key_is_masked_too():
    from wcode_magic.core.keys import Secret

    key = Secret(FAKE_KEY)
    for cut in (8, 12, len(FAKE_KEY) - 1):
        text = key.scrub(f"The server answered with something that is not JSON: b'...token={FAKE_KEY[:cut]}'")
        assert FAKE_KEY[:cut] not in text and key.masked() in text
    assert Secret("EMPTY").scrub("EMPTY key") == "EMPTY key"  # placeholders for servers that check none


def test_a_stored_key_that_cannot_be_sent_is_reported_and_the_local_model_used(session, monkeypatch):
    from wcode_magic.notebook import commands

    monkeypatch.setenv("WCODE_API_KEY", FAKE_KEY[:12] + " " + FAKE_KEY[12:])
    said = wm.auto()
    assert said.startswith("The stored key cannot be used") and "whitespace" in said
    assert session.base_url == wm.local.base_url()
    text = commands.dispatch("config")
    assert "unusable:" in text and "whitespace" in text
    _nowhere(FAKE_KEY[12:], said, text)


def _outcome(replay, name: str, headers: dict) -> tuple:
    """What a call made of a fixture: the answer's parts, or the error and the partial it kept."""
    try:
        r = ask(replay, name, headers=headers, logprobs=True, top_logprobs=2)
    except errors.StreamError as e:
        p = e.partial
        return ("error", type(e).__name__, p.text, p.reasoning, p.logprobs, p.usage.total_tokens)
    return ("done", r.text, r.reasoning, r.logprobs, r.usage.total_tokens, r.finish_reason, r.tool_calls)


@pytest.mark.parametrize("newline", ["lf", "crlf", "cr"])
@pytest.mark.parametrize("split", [1, 7])
@pytest.mark.parametrize(
    "name", ["openrouter_reasoning", "ark_r1", "think_inline", "logprobs", "fields_multiline", "midstream_error"]
)
def test_line_ends_and_chunk_cuts_change_nothing(replay, session, name, newline, split):
    """The same stream over HTTP with other line ends and cut into small HTTP chunks (a \\r\\n split between two
    reads, a multi-byte character split between reads, [DONE] without its blank line) folds to the same answer."""
    plain = _outcome(replay, name, {})
    assert plain[1] and any(plain[2:])  # the fixture says something
    assert _outcome(replay, name, {"X-Replay-Newline": newline, "X-Replay-Split": str(split)}) == plain


def test_multiline_data_and_sse_fields(replay, session):
    r = ask(replay, "fields_multiline")
    assert r.complete and r.text == "two lines" and r.usage.total_tokens == 4
