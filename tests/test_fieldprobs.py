"""r.field_probs(): one row per leaf value with its probability, over HTTP (the local model's JSON, and replayed
provider shapes: a value split over tokens, case and space variants among the alternatives, a CJK value in byte
fragments)."""

from __future__ import annotations

import json
import math

import pytest

import wcode_magic as wm
from wcode_magic.analysis.fieldprobs import leaves, row_probs, top_level_probs
from wcode_magic.core.errors import WcodeWarning

SPEC = "label: yes|no|unsure, ok: bool, reason: str, items: [{name: str, n: int}]"


@pytest.fixture(scope="module")
def answer(local_url):
    return wm.chat(
        "Is the film good?", base_url=local_url, model="local/ngram-thinking", schema=SPEC, logprobs=True,
        top_logprobs=5, seed=3,
    )  # fmt: skip


def test_one_row_per_leaf_with_paths(answer):
    df = answer.field_probs()
    value = answer.parsed
    expected = ["label", "ok", "reason"] + [
        p for i in range(len(value["items"])) for p in (f"items[{i}].name", f"items[{i}].n")
    ]
    assert df["path"].tolist() == expected
    assert df["value"].tolist()[:3] == [value["label"], value["ok"], value["reason"]]


def test_prob_is_the_tokens_together(answer):
    df = answer.field_probs().set_index("path")
    tokens = answer.tokens()
    tokens = tokens[tokens["segment"] == "answer"]
    start = answer.text.index('"reason": "') + len('"reason": "')
    end = answer.text.index('"', start)
    inside = tokens[(tokens["char_end"] > start) & (tokens["char_start"] < end)]
    row = df.loc["reason"]
    assert row["n_tokens"] == len(inside) > 1
    assert math.isclose(row["prob"], math.exp(inside["logprob"].sum()), rel_tol=1e-9)
    assert math.isclose(row["min_prob"], inside["prob"].min(), rel_tol=1e-9)


def test_enum_and_boolean_choices_from_the_alternatives(answer):
    df = answer.field_probs().set_index("path")
    label = df.loc["label"]
    assert set(label["choices"]) == {"yes", "no", "unsure"}
    assert math.isclose(sum(label["choices"].values()), 1.0, rel_tol=1e-6)  # the local model lists every value
    assert math.isclose(label["choices"][label["value"]], label["prob"], rel_tol=1e-9)
    others = {k: v for k, v in label["choices"].items() if k != label["value"]}
    assert label["runner_up"] == max(others, key=others.get) and label["runner_up_prob"] == max(others.values())
    ok = df.loc["ok"]
    assert set(ok["choices"]) == {"true", "false"} and ok["runner_up"] == json.dumps(not ok["value"])
    assert df.loc["reason"]["choices"] is None and math.isnan(df.loc["reason"]["runner_up_prob"])


def test_without_logprobs_a_clear_message(local_url):
    r = wm.chat("Is it good?", base_url=local_url, model="local/ngram", schema="label: yes|no")
    with pytest.warns(WcodeWarning, match=r"logprobs=True, top_logprobs=N"):
        df = r.field_probs()
    assert df.empty and "logprobs=True, top_logprobs=N" in df.attrs["reason"]


def test_an_answer_that_is_no_json_raises_schema_error(local_url):
    r = wm.chat("Hello", base_url=local_url, model="local/ngram", logprobs=True)
    with pytest.raises(wm.SchemaError) as e:
        r.field_probs()
    assert e.value.partial is r


# -- replayed provider shapes ---------------------------------------------------------------------------------------
def _entry(token: str, logprob: float, alts: list[tuple[str, float]]) -> dict:
    data = token.encode()
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(data),
        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts],
    }


def _stream(entries: list[dict], text_pieces: list[str] | None = None) -> bytes:
    chunks = []
    for i, e in enumerate(entries):
        piece = text_pieces[i] if text_pieces else e["token"]
        chunks.append(
            {
                "id": "p",
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": {"content": [e]}}],
            }
        )
    chunks.append({"id": "p", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


L = math.log
# OpenAI-like tokens: '{"' 'label' '":"' 'uns' 'ure' '","' 'city' '":"' <東 in two byte fragments> '京' '"}'
# the value "unsure" is split in two, and its first token's alternatives hold case and space variants
PROVIDER = [
    _entry('{"', 0.0, [('{"', 0.0)]),
    _entry("label", 0.0, [("label", 0.0)]),
    _entry('":"', 0.0, [('":"', 0.0)]),
    _entry("uns", L(0.5), [("uns", L(0.5)), ("yes", L(0.2)), ("Yes", L(0.1)), (" no", L(0.05)), ("maybe", L(0.1))]),
    _entry("ure", L(0.9), [("ure", L(0.9)), ("ured", L(0.1))]),
    _entry('","', 0.0, [('","', 0.0)]),
    _entry("city", 0.0, [("city", 0.0)]),
    _entry('":"', 0.0, [('":"', 0.0)]),
    {"token": "\\xe6\\x9d", "logprob": L(0.8), "bytes": [0xE6, 0x9D], "top_logprobs": []},
    {"token": "\\xb1", "logprob": L(0.9), "bytes": [0xB1], "top_logprobs": []},
    _entry("京", L(0.7), [("京", L(0.7))]),
    _entry('"}', 0.0, [('"}', 0.0)]),
]
PIECES = [e["token"] for e in PROVIDER[:8]] + ["", "東", "京", '"}']


@pytest.fixture(scope="module")
def provider():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from wire import serve

    async def completions(request):
        return Response(_stream(PROVIDER, PIECES), media_type="text/event-stream")

    server, url = serve(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])]))
    yield url
    server.should_exit = True


def test_split_value_pooled_variants_and_cjk_fragments(provider):
    r = wm.chat(
        "?",
        base_url=provider,
        model="other/model",
        schema="label: yes|no|unsure, city: str",
        logprobs=True,
        top_logprobs=5,
    )
    assert r.parsed == {"label": "unsure", "city": "東京"}
    df = r.field_probs().set_index("path")
    label = df.loc["label"]
    assert label["n_tokens"] == 2 and math.isclose(label["prob"], 0.45) and math.isclose(label["min_prob"], 0.5)
    assert label["choices"] == pytest.approx({"yes": 0.3, "no": 0.05, "unsure": 0.5})  # "Yes" pooled; "maybe" not
    assert label["runner_up"] == "yes" and math.isclose(label["runner_up_prob"], 0.3)
    city = df.loc["city"]
    assert city["n_tokens"] == 3 and math.isclose(city["prob"], 0.8 * 0.9 * 0.7)


def test_leaves_have_spans():
    text = 'Sure: {"a": [1, {"b": "x y"}], "c": true, "d": {}, "e": ""}'
    found = {tuple(leaf.path): text[leaf.start : leaf.end] for leaf in leaves(text)}
    assert found == {("a", 0): "1", ("a", 1, "b"): "x y", ("c",): "true", ("d",): "{}", ("e",): '""'}


THINKING = [
    _entry("<think>", 0.0, []),
    _entry("Say {yes}.", L(0.5), []),
    _entry("</think>", 0.0, []),
    _entry("\n\n", L(0.9), []),
    _entry('{"', 0.0, []),
    _entry("ok", 0.0, []),
    _entry('": ', 0.0, []),
    _entry("true", L(0.6), [("true", L(0.6)), ("false", L(0.3)), ("True", L(0.05))]),
    _entry("}", 0.0, []),
]


@pytest.fixture(scope="module")
def thinker():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from wire import serve

    async def completions(request):
        return Response(_stream(THINKING), media_type="text/event-stream")

    server, url = serve(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])]))
    yield url
    server.should_exit = True


def test_json_after_an_inline_think_block(thinker):
    r = wm.chat("?", base_url=thinker, model="qwen/qwen3-8b", schema="ok: bool", logprobs=True, top_logprobs=5)
    assert r.reasoning == "Say {yes}." and r.parsed == {"ok": True}
    row = r.field_probs().set_index("path").loc["ok"]
    assert row["n_tokens"] == 1 and math.isclose(row["prob"], 0.6)
    assert row["choices"] == pytest.approx({"true": 0.65, "false": 0.3})


def test_a_sweeps_row_probs_are_field_probs_top_level_without_the_frame(answer, thinker):
    """wm.batch's <field>_prob columns come from row_probs (no DataFrame per row): the same numbers."""
    other = wm.chat("?", base_url=thinker, model="qwen/qwen3-8b", schema="ok: bool", logprobs=True, top_logprobs=5)
    for r, fields in ((answer, ["label", "ok", "reason", "items"]), (other, ["ok", "missing"])):
        expected = top_level_probs(r.field_probs(), fields)
        got = row_probs(r, fields)
        assert list(got) == list(expected) == fields
        for f in fields:
            assert got[f] == expected[f] or (math.isnan(got[f]) and math.isnan(expected[f])), f
