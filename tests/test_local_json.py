"""The local model speaks JSON: over HTTP, its answers to response_format json_schema / json_object fit the schema,
enum choices come with their real probabilities in the logprobs, and a schema it cannot honour is a 400 naming
what."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from wcode_magic.core.schema import problems
from wcode_magic.local.jsonmode import FALLBACK_SCHEMA

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["yes", "no", "unsure"]},
        "reason": {"type": "string", "maxLength": 60},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "ok": {"type": "boolean"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {"$ref": "#/$defs/Item"},
        },
        "meta": {
            "type": "object",
            "properties": {"lang": {"const": "en"}, "tags": {"type": "array", "items": {"type": "string"}}},
        },
    },
    "required": ["label", "reason", "score", "stars", "ok", "items", "meta"],
    "additionalProperties": False,
    "$defs": {
        "Item": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
            "required": ["name", "qty"],
            "additionalProperties": False,
        }
    },
}


def _format(schema=SCHEMA):
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": schema}}


def _post(url, **body):
    body = {"model": "local/ngram", "messages": [{"role": "user", "content": "Is the review good?"}], **body}
    return httpx.post(url + "/chat/completions", json=body, timeout=30)


def _streamed_content(text):
    content, entries, finish = [], [], None
    for line in text.splitlines():
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices", []):
            content.append(choice["delta"].get("content") or "")
            if choice.get("logprobs"):
                entries += choice["logprobs"]["content"]
            finish = choice.get("finish_reason") or finish
    return "".join(content), entries, finish


@pytest.mark.parametrize("seed", range(6))
def test_whole_answers_fit_the_schema(local_url, seed):
    r = _post(local_url, response_format=_format(), seed=seed, temperature=1.3)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    value = json.loads(choice["message"]["content"])
    from wcode_magic.local.jsonmode import resolve

    assert problems(resolve(SCHEMA), value) == []
    assert 2 <= len(value["items"]) <= 4 and value["meta"]["lang"] == "en"
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize("model", ["local/ngram", "local/ngram-thinking", "local/ngram-thinking-rc"])
def test_streamed_answers_fit_and_keep_thinking_apart(local_url, model):
    r = _post(local_url, model=model, response_format=_format(), stream=True, logprobs=True, top_logprobs=5, seed=3)
    assert r.status_code == 200
    text, entries, finish = _streamed_content(r.text)
    from wcode_magic.local.jsonmode import resolve

    assert problems(resolve(SCHEMA), json.loads(text)) == []
    assert "".join(e["token"] for e in entries) == text and finish == "stop"
    if model != "local/ngram":
        assert '"reasoning' in r.text  # the thinking came in its own field, not in the JSON


def test_enum_choices_carry_their_probabilities(local_url):
    r = _post(local_url, response_format=_format(), logprobs=True, top_logprobs=5, seed=0)
    entries = r.json()["choices"][0]["logprobs"]["content"]
    label = next(e for e in entries if e["token"] in ("yes", "no", "unsure"))
    listed = {a["token"]: a["logprob"] for a in label["top_logprobs"]}
    assert set(listed) == {"yes", "no", "unsure"}
    assert math.isclose(sum(math.exp(v) for v in listed.values()), 1.0, rel_tol=1e-6)
    assert label["logprob"] == listed[label["token"]]
    ok = next(e for e in entries if e["token"] in ("true", "false"))
    assert {a["token"] for a in ok["top_logprobs"]} == {"true", "false"}
    fixed = next(e for e in entries if e["token"] == "{")
    assert fixed["logprob"] == 0.0


def test_temperature_zero_takes_the_likeliest_choice(local_url):
    r = _post(local_url, response_format=_format(), logprobs=True, top_logprobs=5, temperature=0)
    entries = r.json()["choices"][0]["logprobs"]["content"]
    label = next(e for e in entries if e["token"] in ("yes", "no", "unsure"))
    assert label["token"] == label["top_logprobs"][0]["token"]


def test_json_object_without_a_schema(local_url):
    r = _post(local_url, response_format={"type": "json_object"})
    value = json.loads(r.json()["choices"][0]["message"]["content"])
    assert problems(FALLBACK_SCHEMA, value) == []


def test_text_format_is_plain_text(local_url):
    r = _post(local_url, response_format={"type": "text"}, seed=1)
    assert not r.json()["choices"][0]["message"]["content"].startswith("{")


def test_max_tokens_cuts_the_json(local_url):
    r = _post(local_url, response_format=_format(), max_tokens=5)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length" and r.json()["usage"]["completion_tokens"] == 5
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice["message"]["content"])


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^a"}}}, "'pattern'"),
        ({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}, "'format'"),
        ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}, "'allOf'"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "type 'strin'"),
        ({"type": "object", "properties": {"a": {"type": "array", "minItems": 3, "maxItems": 1}}}, "minItems 3"),
        ({"type": "object", "properties": {"a": {"type": "integer", "minimum": 3, "maximum": 2}}}, "no number"),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"$ref": "#/$defs/A"}}},
            "itself",
        ),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}}, "'#/$defs/Nope' names no definition"),
        ({"type": "object", "properties": {"a": {}}}, "no type"),
    ],
)
def test_a_schema_it_cannot_honour_is_a_400_naming_what(local_url, schema, named):
    r = _post(local_url, response_format=_format(schema))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "response_format" and named in error["message"]


@pytest.mark.parametrize("bad", [{"type": "xml"}, {"type": "json_schema"}, "json"])
def test_bad_response_formats_are_400(local_url, bad):
    r = _post(local_url, response_format=bad)
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_string_cuts_the_json_answer(local_url, stream):
    whole = _post(local_url, response_format=_format(), seed=4).json()["choices"][0]["message"]["content"]
    stop = '"meta"'  # a key the schema requires, so the whole answer holds it
    assert stop in whole
    r = _post(local_url, response_format=_format(), seed=4, stop=[stop], stream=stream, logprobs=True)
    if stream:
        text, entries, finish = _streamed_content(r.text)
        assert "".join(e["token"] for e in entries) == text
    else:
        choice = r.json()["choices"][0]
        text, finish = choice["message"]["content"], choice["finish_reason"]
    assert text == whole[: whole.index(stop)] and finish == "stop"


def test_max_tokens_cuts_the_json_answer_with_length(local_url):
    r = _post(local_url, response_format=_format(), seed=4, max_tokens=5)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice["message"]["content"])
