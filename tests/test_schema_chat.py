"""schema= on wm.chat / wm.achat, end to end over HTTP: the local model's JSON read into objects, bad schemas
refused before sending, and replayed provider shapes (json_schema refused -> json_object with the schema in the
instructions, said once per model; JSON after a thinking model's inline thoughts; values split over many chunks;
CJK values)."""

from __future__ import annotations

import asyncio
import linecache
import warnings
from dataclasses import dataclass
from typing import Literal, TypedDict

import pytest
from wire import SchemaRefusingServer

import wcode_magic as wm
from wcode_magic.core import schema as schemas
from wcode_magic.core.errors import WcodeWarning


@dataclass
class Verdict:
    label: Literal["yes", "no", "unsure"]
    reason: str
    score: float


class Tags(TypedDict):
    label: Literal["pos", "neg"]
    tags: list[str]


@pytest.fixture(autouse=True)
def _fresh_refusals():
    schemas.REFUSALS.clear()
    yield
    schemas.REFUSALS.clear()


def _ask(transport, prompt, **kw):
    return wm.chat(prompt, **kw) if transport == "sync" else asyncio.run(wm.achat(prompt, **kw))


def test_dataclass_answer_from_the_local_model(local_url, transport):
    r = _ask(transport, "Is the film good?", base_url=local_url, model="local/ngram", schema=Verdict, seed=4)
    assert r.request["response_format"]["type"] == "json_schema"
    assert r.request["response_format"]["json_schema"]["strict"] is True
    assert "structured_outputs" not in r.request  # the local server documents no such switch
    v = r.parsed
    assert isinstance(v, Verdict) and v.label in ("yes", "no", "unsure") and isinstance(v.score, float)
    assert r.parse_error is None and r.parsed is v


def test_spec_string_and_typeddict_give_dicts_and_thinking_stays_apart(local_url):
    r = wm.chat("Tell me", base_url=local_url, model="local/ngram-thinking", schema="label: yes|no, tags: [str]")
    assert r.reasoning and set(r.parsed) == {"label", "tags"}
    r = wm.chat("Tell me", base_url=local_url, model="local/ngram-thinking-rc", schema=Tags, stream=False)
    assert r.parsed["label"] in ("pos", "neg") and isinstance(r.parsed["tags"], list)


def test_pydantic_model_answer(local_url):
    pydantic = pytest.importorskip("pydantic")

    class Review(pydantic.BaseModel):
        stars: int = pydantic.Field(ge=1, le=5)
        good: bool

    r = wm.chat("Rate it", base_url=local_url, model="local/ngram", schema=Review)
    assert isinstance(r.parsed, Review) and 1 <= r.parsed.stars <= 5


@pytest.mark.parametrize(
    ("bad", "named"),
    [("label: maybe", "unknown type 'maybe'"), ({"type": "array"}, "top level"), (int, "is not a schema")],
)
def test_bad_schemas_fail_before_anything_is_sent(counted_local, bad, named):
    before = counted_local.count
    with pytest.raises(wm.InvalidParameterError, match="schema") as e:
        wm.chat("hi", base_url=counted_local.base_url, model="local/ngram", schema=bad)
    assert named in str(e.value) and counted_local.count == before


def test_schema_and_response_format_together_are_refused(counted_local):
    before = counted_local.count
    with pytest.raises(wm.InvalidParameterError, match="not both"):
        wm.chat("hi", base_url=counted_local.base_url, schema="a: str", response_format={"type": "json_object"})
    assert counted_local.count == before


def test_a_schema_the_local_model_cannot_honour_is_its_400(counted_local):
    before = counted_local.count
    with warnings.catch_warnings():
        warnings.simplefilter("error", WcodeWarning)  # no fallback, so no warning
        with pytest.raises(wm.InvalidParameterError, match="cannot honour 'pattern'"):
            wm.chat(
                "hi",
                base_url=counted_local.base_url,
                model="local/ngram",
                schema={"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
            )
    assert counted_local.count == before + 1


def test_an_answer_that_does_not_fit_is_a_schema_error_with_the_text_kept(local_url):
    r = wm.chat("hi", base_url=local_url, model="local/ngram", schema="a: str", max_tokens=4)
    with pytest.raises(wm.SchemaError) as e:
        _ = r.parsed
    assert isinstance(e.value, wm.WcodeError) and e.value.partial is r and r.text.startswith('{"a": ')
    assert "not valid JSON" in e.value.message and "cut off" in e.value.message
    assert r.parse_error is e.value


# -- replayed provider shapes ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider():
    server = SchemaRefusingServer()
    yield server
    server.stop()


def test_json_schema_refused_falls_back_to_json_object_once_per_model(provider, transport):
    provider.requests.clear()
    with pytest.warns(WcodeWarning, match="refused response_format json_schema") as caught:
        r = _ask(transport, "Is it good?", base_url=provider.base_url, model="qwen/qwen3-8b", schema=Verdict)
    assert len([w for w in caught if "json_schema" in str(w.message)]) == 1
    first, second = provider.requests
    assert first["response_format"]["type"] == "json_schema" and first["structured_outputs"] is True
    assert second["response_format"] == {"type": "json_object"} and "structured_outputs" not in second
    system = second["messages"][0]
    assert system["role"] == "system" and '"label"' in system["content"] and "JSON" in system["content"]
    assert r.parsed == Verdict("yes", "fine", 0.5)

    provider.requests.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", WcodeWarning)  # said once per model: now silent, straight to json_object
        r = _ask(
            transport, "Again", base_url=provider.base_url, model="qwen/qwen3-8b", schema=Verdict, system="Be brief."
        )
    assert [q["response_format"]["type"] for q in provider.requests] == ["json_object"]
    assert provider.requests[0]["messages"][0]["content"].startswith("Be brief.\n\n")
    assert r.parsed.label == "yes"


def test_json_after_inline_thinking_split_over_many_chunks_with_cjk(provider):
    provider.pieces = ["<thi", "nk>The user wants {json}.</th", "ink>", '{"ci', 'ty": "東', "京", '", "n": 1', "2}"]
    try:
        with pytest.warns(WcodeWarning):
            r = wm.chat("Where?", base_url=provider.base_url, model="some/thinker", schema="city: str, n: int")
    finally:
        provider.pieces = ['{"label": "yes"', ', "reason": "fine", "score": 0.5}']
    assert r.reasoning == "The user wants {json}." and r.parsed == {"city": "東京", "n": 12}


def test_a_value_of_the_wrong_kind_names_its_field(provider):
    provider.pieces = ['```json\n{"label": "perhaps", "reason": 3}\n```']
    try:
        with pytest.warns(WcodeWarning):
            r = wm.chat("?", base_url=provider.base_url, model="other/model", schema=Verdict)
    finally:
        provider.pieces = ['{"label": "yes"', ', "reason": "fine", "score": 0.5}']
    with pytest.raises(wm.SchemaError) as e:
        _ = r.parsed
    paths = [p.path for p in e.value.problems]
    assert paths == ["score", "label", "reason"] and 'label: is "perhaps"' in e.value.message


def test_the_fallback_said_from_a_batch_points_at_the_batch_line(provider):
    """The warning is raised in a task of ours (the client's loop thread for wm.batch, the caller's loop for
    wm.abatch): it still points at the user's line, not at asyncio or the package."""

    async def abatch():
        return await wm.abatch(["a", "b"], base_url=provider.base_url, model="m/two", schema=Verdict, progress=False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = wm.batch(["a", "b"], base_url=provider.base_url, model="m/one", schema=Verdict, progress=False)
        awaited = asyncio.run(abatch())
    said = [w for w in caught if issubclass(w.category, WcodeWarning)]
    assert [str(w.message).split(" at ")[0] for w in said] == ["m/one", "m/two"]
    for w, call in zip(said, ["wm.batch(", "wm.abatch("], strict=True):
        assert w.filename == __file__ and call in linecache.getline(w.filename, w.lineno), (w.filename, w.lineno)
    assert plain["label"].tolist() == awaited["label"].tolist() == ["yes", "yes"]
