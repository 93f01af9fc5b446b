"""r.branch(...) over real HTTP: the bundled local server continues a prefill exactly, branches at the first and
last token, inside a multi-byte character, on a thinking model's answer; a server that ignores the prefill is found
out by the check and refused, and the verdict is kept for the session."""

from __future__ import annotations

import math

import httpx
import pytest

import wcode_magic as wm
from wcode_magic.core import prefill
from wcode_magic.local.faults import parse_faults

PROMPT = "Why is the sky blue?"


@pytest.fixture(autouse=True)
def fresh_verdicts():
    prefill.forget()
    yield
    prefill.forget()


def answer(local_url: str, model: str = "local/ngram", **kw) -> wm.Response:
    kw = {"max_tokens": 12, "logprobs": True, "top_logprobs": 4, "seed": 3, **kw}
    return wm.chat(PROMPT, model=model, base_url=local_url, **kw)


def tops(entry: dict) -> list[tuple[str, float]]:
    return [(a["token"], round(a["logprob"], 9)) for a in entry["top_logprobs"]]


def test_local_server_continues_a_trailing_assistant_message_exactly(local_url):
    r = answer(local_url)
    tokens = [e["token"] for e in r.logprobs]
    for k in (1, 5, len(tokens) - 1):
        messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "".join(tokens[:k])}]
        c = wm.chat(messages, model="local/ngram", base_url=local_url, max_tokens=1, logprobs=True, top_logprobs=4)
        assert tops(c.logprobs[0]) == tops(r.logprobs[k])  # the same distribution as at position k


def test_ignore_prefill_fault_parses_and_answers_afresh(local_url):
    assert parse_faults("ignore_prefill").ignore_prefill
    r = answer(local_url)
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": r.text}]
    c = wm.chat(
        messages,
        model="local/ngram",
        base_url=local_url,
        max_tokens=1,
        logprobs=True,
        top_logprobs=4,
        headers={"X-Wcode-Fault": "ignore_prefill"},
    )
    assert tops(c.logprobs[0]) == tops(r.logprobs[0])  # as if nothing had been begun


def test_branch_at_the_first_token_forces_each_alternative(local_url):
    r = answer(local_url)
    b = r.branch(0, max_tokens=5)
    listed = [a["token"] for a in r.logprobs[0]["top_logprobs"] if a["token"] != r.logprobs[0]["token"]]
    assert [x.token for x in b] == listed and b.position == 0
    for x in b:
        assert x.prefix == x.token and x.text == x.token + x.continuation
        assert x.response.request["messages"][-1] == {"role": "assistant", "content": x.token}
        assert x.continuation and x.response.finish_reason in ("stop", "length")
        assert len(x.response.logprobs) <= 5
    df = b.frame()
    assert list(df.columns) == [
        "branch",
        "position",
        "token",
        "forced",
        "prob",
        "continuation",
        "text",
        "mean_logprob",
        "tokens",
        "finish_reason",
        "cost",
    ]
    assert df["branch"].tolist() == ["original", *range(1, len(b) + 1)]
    assert df.loc[0, "text"] == r.text and not df.loc[0, "forced"] and df["forced"][1:].all()
    expected = {a["token"]: math.exp(a["logprob"]) for a in r.logprobs[0]["top_logprobs"]}
    for _, row in df.iloc[1:].iterrows():
        assert row["prob"] == pytest.approx(expected[row["token"]])
        assert math.isfinite(row["mean_logprob"]) and row["cost"] == 0
    html = b._repr_html_()
    assert html.count("class='t forced'") == len(b) and "class='t orig'" in html
    assert "original" in html and repr(b).startswith("<Branches at position 0")


def test_branch_at_the_last_token_with_a_chosen_token_and_n(local_url):
    r = answer(local_url)
    last = len(r.logprobs) - 1
    b = r.branch(-1, token=" water", n=2, max_tokens=4)
    assert len(b) == 2 and b.position == last
    before = "".join(e["token"] for e in r.logprobs[:last])
    for i, x in enumerate(b):
        assert x.prefix == before + " water" and x.text.startswith(before + " water")
        assert x.response.request["seed"] == 3 + i  # n continuations differ, and re-run the same
    listed = {a["token"] for a in r.logprobs[last]["top_logprobs"]}
    assert (b[0].prob is None) == (" water" not in listed)


def test_branch_on_a_thinking_models_answer(local_url):
    r = answer(local_url, model="local/ngram-thinking", max_tokens=80)
    assert r.reasoning and r.text
    middle = len(r.logprobs) // 2
    b = r.branch(middle, max_tokens=4)
    assert len(b) >= 1
    head = "".join(e["token"] for e in r.logprobs[:middle])
    for x in b:
        assert x.text.startswith(head + x.token)
        assert x.response.reasoning == ""  # a begun answer is continued, not thought about again
        assert x.response.logprobs  # the answer's own tokens


def _fed(local_url: str) -> wm.Response:
    """An answer "Café" whose "é" came as two byte tokens (as byte-level tokenizers send it), from the local
    server's address: built from the chunks such a server streams."""
    request = {
        "model": "local/ngram",
        "messages": [{"role": "user", "content": "Tell me about the weather"}],
        "logprobs": True,
        "top_logprobs": 3,
    }
    r = wm.Response(request, base_url=local_url)

    def entry(token, raw, logprob, alts):
        return {
            "token": token,
            "logprob": logprob,
            "bytes": raw,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, b, lp in alts],
        }

    entries = [
        entry(" Caf", list(b" Caf"), -0.5, [(" Caf", list(b" Caf"), -0.5), (" The", list(b" The"), -1.5)]),
        entry(
            "\\xc3",
            [0xC3],
            -0.2,
            [("\\xc3", [0xC3], -0.2), ("e", [0x65], -2.0), ("\\xc2", [0xC2], -3.0)],
        ),
        entry("\\xa9", [0xA9], -0.1, [("\\xa9", [0xA9], -0.1), ("\\xa8", [0xA8], -2.5)]),
    ]
    for e, piece in zip(entries, [" Caf", "", "é"], strict=True):
        r.feed({"choices": [{"index": 0, "delta": {"content": piece}, "logprobs": {"content": [e]}}]})
    r.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    r.finish(complete=True)
    assert r.text == " Café"
    return r


def test_branch_inside_a_multibyte_character(local_url):
    r = _fed(local_url)
    b = r.branch(2, max_tokens=3)  # the character's second byte: "è" instead of "é"
    assert [x.prefix for x in b] == [" Cafè"]
    assert b[0].token_bytes == bytes([0xA8]) and b[0].prob == pytest.approx(math.exp(-2.5))
    assert b[0].text.startswith(" Cafè") and b[0].continuation
    assert b.frame().loc[0, "text"] == " Café"
    # the first byte: "e" makes whole text; another lead byte would leave half a character, refused before sending
    assert r.branch(1, token="e", max_tokens=3)[0].prefix == " Cafe"
    with pytest.raises(wm.InvalidParameterError, match=r"inside a multi-byte character .*position 1"):
        r.branch(1, max_tokens=3)


def test_a_server_that_ignores_the_prefill_is_refused_and_remembered(local_url):
    # the same server under another name is one the client does not know: it checks before branching
    url = local_url.replace("127.0.0.1", "localhost")
    assert prefill.dialect_for(url) == prefill.CHECK and prefill.dialect_for(local_url) == prefill.LOCAL
    r = answer(url)
    ignoring = {"X-Wcode-Fault": "ignore_prefill"}
    with pytest.raises(prefill.PrefillError, match="does not continue a prefilled answer"):
        r.branch(3, max_tokens=3, headers=ignoring)
    assert prefill.verdict(url, "local/ngram") is False
    with pytest.raises(prefill.PrefillError, match="earlier in this session"):
        r.branch(3, max_tokens=3)  # remembered: refused without a new check


def test_an_unknown_server_that_continues_is_checked_once(counted_local):
    r = answer(counted_local.base_url)
    before = counted_local.count
    b = r.branch(2, max_tokens=3)
    assert counted_local.count == before + 1 + len(b)  # one check, then the forks
    assert prefill.verdict(counted_local.base_url, "local/ngram") is True
    before = counted_local.count
    b = r.branch(3, max_tokens=3)
    assert counted_local.count == before + len(b)


def test_dialects_send_the_prefill_in_the_servers_form():
    messages = [{"role": "user", "content": "Hi"}]
    for dialect in (prefill.LOCAL, prefill.LLAMA, prefill.CHECK):
        sent, extra = prefill.prefill_request(messages, "Hel", dialect)
        assert sent == [*messages, {"role": "assistant", "content": "Hel"}] and extra == {}
    sent, extra = prefill.prefill_request(messages, "Hel", prefill.DEEPSEEK)
    assert sent[-1] == {"role": "assistant", "content": "Hel", "prefix": True} and extra == {}
    sent, extra = prefill.prefill_request(messages, "Hel", prefill.VLLM)
    assert extra == {"continue_final_message": True, "add_generation_prompt": False}
    assert prefill.dialect_for("https://api.deepseek.com/beta") == prefill.DEEPSEEK
    assert prefill.dialect_for("https://wcode.net/api/gpt/v1") == prefill.CHECK
    with pytest.raises(wm.InvalidParameterError, match="dialect="):
        prefill.dialect_for("http://x", "sglang")


def test_bad_arguments_are_refused_before_sending(local_url):
    r = answer(local_url)
    for kw, name in ((dict(at=99), "at"), (dict(at=0, n=0), "n"), (dict(at=0, token=""), "token")):
        with pytest.raises(wm.InvalidParameterError, match=f"{name}="):
            r.branch(**kw)
    plain = wm.chat(PROMPT, model="local/ngram", base_url=local_url, max_tokens=3)
    with pytest.raises(wm.InvalidParameterError, match="no token logprobs"):
        plain.branch(0)
    with httpx.Client() as c:  # the local server is up and untouched by the refusals
        assert c.get(local_url + "/models").status_code == 200


def test_a_key_given_for_the_branch_is_sent_and_not_kept(local_url):
    r = answer(local_url)
    key = "sk-test-branch-0123456789abcdef"
    b = r.branch(1, token=" sea", max_tokens=2, api_key=key)
    assert b[0].response.complete and key not in repr(b[0].response.request)
    assert key not in b.frame().to_string() and key not in b._repr_html_()
