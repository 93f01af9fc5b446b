"""wm.step(...): one token at a time over real HTTP on the bundled local server; the filters' arithmetic; the
widget's buttons and sliders; a server that ignores the prefill refused; the widget in a real kernel."""

from __future__ import annotations

import math

import pytest

import wcode_magic as wm
from wcode_magic.analysis.stepping import Stepper, shape
from wcode_magic.core import prefill

PROMPT = "Why is the sky blue?"


@pytest.fixture(autouse=True)
def fresh_verdicts():
    prefill.forget()
    yield
    prefill.forget()


def test_shape_applies_temperature_then_each_filter_on_the_survivors():
    probs = [0.5, 0.25, 0.15, 0.1]
    assert shape(probs, 1.0, 0, 1.0, 0.0) == pytest.approx([0.5, 0.25, 0.15, 0.1])
    assert shape(probs, 0.0, 0, 1.0, 0.0) == [1.0, 0.0, 0.0, 0.0]
    assert shape(probs, 1.0, 2, 1.0, 0.0) == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert shape(probs, 1.0, 0, 0.7, 0.0) == pytest.approx([2 / 3, 1 / 3, 0, 0])  # 0.5 + 0.25 reach 0.7
    assert shape(probs, 1.0, 0, 1.0, 0.3) == pytest.approx([0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0])  # >= 0.15
    hot = shape(probs, 2.0, 0, 1.0, 0.0)
    assert hot[0] < 0.5 and hot[3] > 0.1 and sum(hot) == pytest.approx(1)
    assert shape([], 1.0, 0, 1.0, 0.0) == []


def test_candidates_are_the_models_distribution_after_the_text_so_far(local_url):
    # ignore_eos as the stepper asks (an early end of text is then not banned, so the distributions are the same);
    # greedy, so every sampled token is listed (the local server reports the temperature-1 distribution)
    kw = {"max_tokens": 6, "logprobs": True, "top_logprobs": 20, "temperature": 0, "extra_body": {"ignore_eos": True}}
    r = wm.chat(PROMPT, model="local/ngram", base_url=local_url, **kw)
    st = Stepper(PROMPT, model="local/ngram", base_url=local_url, seed=1)
    for k, entry in enumerate(r.logprobs[:4]):
        expected = sorted(entry["top_logprobs"], key=lambda a: -a["logprob"])
        got = st.candidates()
        assert [c.text for c in got] == [a["token"] for a in expected]
        assert [c.prob for c in got] == pytest.approx([math.exp(a["logprob"]) for a in expected])
        st.take(entry["token"])
        assert st.text == "".join(e["token"] for e in r.logprobs[: k + 1])


def test_take_sample_back_and_run_to_end(local_url):
    st = Stepper(PROMPT, model="local/ngram", base_url=local_url, seed=4, top_k=2, max_tokens=8)
    first = st.take(0)
    assert first.how == "click" and st.text == first.text
    drawn = st.sample()
    assert drawn.text in [c.text for c in st._candidates[first.raw]][:2]  # top_k=2: one of the first two
    assert st.back() == drawn and st.text == first.text
    r = st.run_to_end()
    assert r.complete and st.finished in ("stop", "length")
    assert st.text == first.text + r.text and all(t.how == "run" for t in st.taken[1:])
    assert len(st.taken) - 1 <= 8


def test_bad_settings_are_refused():
    with pytest.raises(wm.InvalidParameterError, match=r"top_p=1\.5"):
        Stepper(PROMPT, model="local/ngram", top_p=1.5)
    with pytest.raises(wm.InvalidParameterError, match="not a step setting"):
        Stepper(PROMPT, model="local/ngram", frequency_penalty=1)


def test_a_server_that_ignores_the_prefill_is_refused(local_url, counted_local):
    url = local_url.replace("127.0.0.1", "localhost")  # a server the client does not know: checked first
    with pytest.raises(prefill.PrefillError, match="does not continue a prefilled answer"):
        wm.step(PROMPT, model="local/ngram", base_url=url, headers={"X-Wcode-Fault": "ignore_prefill"})
    st = Stepper(PROMPT, model="local/ngram", base_url=counted_local.base_url, seed=1)
    assert st.dialect == prefill.CHECK and st.candidates()  # an honest one passes the check


def test_the_widget_buttons_and_sliders(local_url):
    w = wm.step(PROMPT, model="local/ngram", base_url=local_url, seed=2, max_tokens=5)
    st = w.stepper
    assert len(w.candidate_buttons) == len(st.candidates()) == 20
    w.candidate_buttons[1].click()
    assert st.taken[-1].text == st._candidates[b""][1].text and "forced" in w.text.value
    w.sliders["top_k"].value = 3
    assert sum(1 for a in st.shaped() if a > 0) == 3
    assert "#eee" in [b.style.button_color for b in w.candidate_buttons]  # the cut ones greyed
    w.sample_button.click()
    assert len(st.taken) == 2 and st.taken[-1].how == "sample"
    w.back_button.click()
    assert len(st.taken) == 1
    w.run_button.click()
    assert st.finished and "ended" in w.status.value
    assert "application/vnd.jupyter.widget-view+json" in w._repr_mimebundle_()


def test_in_a_real_kernel_the_widget_steps(local_url):
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import time, wcode_magic as wm\n"
        f"w = wm.step({PROMPT!r}, model='local/ngram', base_url={local_url!r}, seed=3, max_tokens=6)\n"
        "w",
        "t = time.perf_counter(); w.candidate_buttons[0].click(); dt = time.perf_counter() - t\n"
        "w.sample_button.click(); w.back_button.click(); w.run_button.click()\n"
        "print(len(w.stepper.taken) >= 2, w.stepper.finished is not None, dt < 1.0)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outs = [c.outputs for c in nb.cells]
    assert "application/vnd.jupyter.widget-view+json" in outs[0][0]["data"]
    assert outs[1][0]["text"] == "True True True\n"
