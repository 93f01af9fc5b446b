"""The token heat map (HTML) and the confidence plot."""

from __future__ import annotations

import html
import math
import re
import warnings

import matplotlib
import pytest

import wcode_magic as wm
from wcode_magic.analysis.render import BUDGET_BYTES
from wcode_magic.core.errors import InvalidParameterError, WcodeWarning
from wcode_magic.core.response import Response

matplotlib.use("Agg")


def make(tokens: list[tuple[str, float, list[tuple[str, float]]]]) -> Response:
    r = Response({"model": "m", "logprobs": True, "top_logprobs": 5})
    for token, lp, alts in tokens:
        e = {"token": token, "logprob": lp, "bytes": list(token.encode())}
        e["top_logprobs"] = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in alts]
        r.feed({"choices": [{"index": 0, "delta": {"content": token}, "logprobs": {"content": [e]}}]})
    r.finish(complete=True)
    return r


SMALL = [
    ("Hello", math.log(0.9), [("Hello", math.log(0.9)), ("Hi", math.log(0.05))]),
    (" world", math.log(0.2), [(" there", math.log(0.7)), (" world", math.log(0.2))]),
    ("\n", math.log(0.6), [("\n", math.log(0.6)), ("!", math.log(0.3))]),
    ("\tx", math.log(0.01), [("y", math.log(0.8))]),
]


def spans(markup: str) -> list[tuple[str, str, str]]:
    """Token spans with a hover title; the ``<wbr>`` after a drawn space (a line-break chance) left out."""
    return re.findall(r'<span class=(b\d) title="([^"]*)">([^<]*)</span>', markup.replace("<wbr>", ""))


def spans_any(markup: str) -> list[tuple[str, str, str]]:
    """Every token span, with or without a hover title ("" when it has none)."""
    return re.findall(r'<span class=(b\d)(?: title="([^"]*)")?>([^<]*)</span>', markup.replace("<wbr>", ""))


@pytest.mark.parametrize("color_by", ["prob", "entropy", "rank"])
def test_each_token_is_coloured_with_alternatives_on_hover(color_by):
    view = make(SMALL).show_tokens(color_by=color_by, top=5)
    found = spans(view._repr_html_())
    assert len(found) == 4 and not view.truncated
    texts = [html.unescape(t) for _, _, t in found]
    assert texts == ["Hello", "·world", "↵\n", "→x"]  # whitespace drawn, the newline kept as a break
    title = html.unescape(found[1][1])
    assert "·there  70.0%" in title and "▸·world  20.0%" in title and "rank 2" in title
    classes = [c for c, _, _ in found]
    if color_by == "prob":
        assert classes == ["b9", "b2", "b6", "b0"]
    if color_by == "rank":
        assert classes == ["b9", "b5", "b9", "b0"]  # "\tx" is not in its own list


def test_top_limits_the_hover_list():
    title = html.unescape(spans(make(SMALL).show_tokens(top=1).html)[1][1])
    assert "there" in title and "world  20.0%" not in title
    assert "world" not in "\n".join(html.unescape(s[1]) for s in spans(make(SMALL).show_tokens(top=0).html)[:2])


def test_bad_arguments_are_refused_before_rendering():
    r = make(SMALL)
    with pytest.raises(InvalidParameterError, match=r"color_by='probability'.*'prob', 'entropy', 'rank'"):
        r.show_tokens(color_by="probability")
    with pytest.raises(InvalidParameterError, match=r"top=21.*0 to 20"):
        r.show_tokens(top=21)


def test_sixteen_thousand_tokens_stay_under_one_megabyte_whole_with_hovers_for_the_least_likely():
    alts = [(f" alt{i}", math.log(0.1 - i * 0.004)) for i in range(20)]
    probs = [0.05 + 0.9 * ((i * 7919) % 16_000) / 16_000 for i in range(16_000)]  # every probability, shuffled
    r = make([(f" w{i % 97}", math.log(p), alts) for i, p in enumerate(probs)])
    view = r.show_tokens(color_by="entropy", top=5)
    size = len(view.html.encode())
    assert size < 1_000_000 and size <= BUDGET_BYTES + 2_000
    assert view.total == view.shown == 16_000, "the whole answer is coloured"
    found = spans_any(view.html)
    assert len(found) == 16_000
    hovered = [i for i, (_, title, _) in enumerate(found) if title]
    assert 0 < len(hovered) == view.hovers < 16_000
    assert max(probs[i] for i in hovered) < min(p for i, p in enumerate(probs) if i not in set(hovered))
    assert f"Alternatives on hover for the {view.hovers} least likely of the 16000 tokens shown" in view.html
    assert "alternatives on hover for" in repr(view)


def test_an_answer_too_long_for_one_megabyte_is_cut_with_a_note():
    r = make([(f" w{i % 97}", math.log(0.5), []) for i in range(60_000)])
    view = r.show_tokens()
    assert len(view.html.encode()) < 1_000_000
    assert 0 < view.shown < 60_000 and view.truncated and "truncated" in repr(view)
    assert f"Showing the first {view.shown} of 60000 tokens" in view.html
    assert len(spans_any(view.html)) == view.shown


def test_no_logprobs_shows_the_reason_once():
    r = Response({"model": "m", "logprobs": True})
    r.feed({"choices": [{"index": 0, "delta": {"content": "4"}, "logprobs": None}]})
    r.finish(complete=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = r.show_tokens()
    assert len([w for w in caught if issubclass(w.category, WcodeWarning)]) == 1
    assert "logprobs: null" in html.unescape(view.html) and view.shown == 0


def test_local_model_view_and_plot(local_url):
    r = wm.chat(
        "The sea", model="local/ngram", base_url=local_url, logprobs=True, top_logprobs=5, seed=3, max_tokens=30
    )
    view = r.show_tokens()
    found = spans(view.html)
    assert len(found) == len(r.logprobs)
    assert "".join(html.unescape(t) for _, _, t in found).replace("·", " ").replace("↵\n", "\n") == r.text

    ax = wm.plot_confidence(r)
    sampled_line = ax.get_lines()[0]
    assert list(sampled_line.get_ydata()) == pytest.approx(r.tokens()["prob"].tolist())
    assert ax.collections, "the runner-up band is drawn"
    assert ax.get_ylim()[1] >= 1


def test_plot_without_logprobs_says_why():
    r = Response({"model": "m"})
    r.feed({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    r.finish(complete=True)
    with pytest.warns(WcodeWarning):
        ax = wm.plot_confidence(r)
    assert "not requested" in ax.texts[0].get_text()


def test_byte_fragment_alternatives_show_as_hex_on_hover():
    """An alternative that is half a character reads as its bytes, even beside a whole sampled character."""
    r = Response({"model": "m", "logprobs": True, "top_logprobs": 2})
    alts = [
        {"token": "好", "logprob": -0.2, "bytes": list("好".encode())},
        {"token": "\ufffd", "logprob": -1.9, "bytes": [0xE6, 0x88]},
    ]
    e = {"token": "好", "logprob": -0.2, "bytes": list("好".encode()), "top_logprobs": alts}
    r.feed({"choices": [{"index": 0, "delta": {"content": "好"}, "logprobs": {"content": [e]}}]})
    r.finish(complete=True)
    ((_, title, text),) = spans(r.show_tokens()._repr_html_())
    assert text == "好" and "&lt;e6 88&gt;" in title
