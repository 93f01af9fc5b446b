"""core/schema.py: every form schema= accepts, turned into JSON Schema; answers checked with paths; bad schemas
refused with the problem named (pure: nothing is sent)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Optional, TypedDict

import pytest

from wcode_magic.core.errors import InvalidParameterError, SchemaError, WcodeError
from wcode_magic.core.schema import format_path, json_span, parse_json, to_schema


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclass
class Item:
    name: str
    qty: int


@dataclass
class Order:
    label: Literal["yes", "no"]
    items: list[Item]
    mood: Mood
    note: Optional[str] = None  # noqa: UP045 - the spelling users write
    tags: list[str] = field(default_factory=list)


@dataclass
class Node:
    kids: list[Node]


class Review(TypedDict):
    label: Literal["pos", "neg"]
    score: float


SPEC = "label: yes|no|unsure, reason: str, score: float"


def test_spec_string_becomes_a_closed_object():
    s = to_schema(SPEC)
    assert s.kind == "spec" and s.fields == ["label", "reason", "score"]
    assert s.json["properties"]["label"] == {"enum": ["yes", "no", "unsure"]}
    assert s.json["properties"]["score"] == {"type": "number"}
    assert s.json["required"] == ["label", "reason", "score"] and s.json["additionalProperties"] is False
    assert s.strict
    rf = s.response_format()
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True and rf["json_schema"]["schema"] == s.json


def test_spec_string_nested_lists_and_optional():
    s = to_schema("items: [{name: str, qty: int}], tags: list[str], note?: str, meta: {ok: bool}, n: 1|2|3")
    items = s.json["properties"]["items"]
    assert items["type"] == "array" and items["items"]["properties"]["qty"] == {"type": "integer"}
    assert s.json["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert "note" not in s.json["required"] and not s.strict
    assert s.json["properties"]["meta"]["properties"]["ok"] == {"type": "boolean"}
    assert s.json["properties"]["n"] == {"enum": [1, 2, 3]}


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("label", "field 'label' has no type"),
        ("label: foo", "unknown type 'foo'"),
        ("a: str,, b: int", "expected a field name"),
        ("a: {}", "empty object"),
        ("a: str b: int", "unexpected 'b'"),
        ("a: str, a: int", "given twice"),
        ("a: yes|yes", "lists a choice twice"),
        ("a: [str", "expected ']'"),
        ("", "empty"),
        ("a: str; b: int", "unexpected ';'"),
    ],
)
def test_bad_spec_strings_name_the_problem(spec, named):
    with pytest.raises(InvalidParameterError, match="schema") as e:
        to_schema(spec)
    assert named in str(e.value) and e.value.param == "schema"


def test_dataclass_with_nested_enum_literal_optional():
    s = to_schema(Order)
    assert s.kind == "dataclass" and s.name == "Order"
    props = s.json["properties"]
    assert props["label"] == {"enum": ["yes", "no"]}
    assert props["mood"] == {"enum": ["happy", "sad"]}
    assert props["items"]["items"]["required"] == ["name", "qty"]
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert s.json["required"] == ["label", "items", "mood"]
    order = s.parse('{"label": "yes", "items": [{"name": "tea", "qty": 2}], "mood": "sad"}')
    assert order == Order("yes", [Item("tea", 2)], Mood.SAD)


def test_typeddict_builds_a_dict():
    s = to_schema(Review)
    assert s.kind == "typeddict" and s.json["required"] == ["label", "score"]
    assert s.parse('{"label": "pos", "score": 0.5}') == {"label": "pos", "score": 0.5}


def test_json_schema_dict_and_the_openai_wrapper():
    inner = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert to_schema(inner).json == inner
    wrapped = to_schema({"name": "thing", "schema": inner, "strict": True})
    assert wrapped.name == "thing" and wrapped.json == inner


def test_refs_are_inlined_and_recursion_refused():
    s = to_schema(
        {
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/P"}},
            "$defs": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}},
        }
    )
    assert s.json["properties"]["p"]["properties"]["x"] == {"type": "number"} and "$defs" not in s.json
    with pytest.raises(InvalidParameterError, match="recursive"):
        to_schema({"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"$ref": "#/$defs/P"}}})


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"type": "array", "items": {"type": "string"}}, "top level must be an object"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, 'at a: type "strin"'),
        ({"type": "object", "properties": {"a": {"enum": []}}}, "enum must be a non-empty list"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "not in properties"),
        ({"type": "object", "properties": {"a": {"name": "str"}}}, "'name' is not a JSON Schema keyword"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}}, "names no definition"),
        ({"type": "object", "properties": {"a": {"type": "number", "default": float("nan")}}}, "NaN"),
        (int, "is not a schema"),
        (3, "is not a schema"),
    ],
)
def test_bad_schemas_are_refused_before_sending(bad, named):
    with pytest.raises(InvalidParameterError) as e:
        to_schema(bad)
    assert named in str(e.value)


def test_dataclass_field_without_a_json_form():
    @dataclass
    class Odd:
        when: complex

    with pytest.raises(InvalidParameterError, match="field when has type complex"):
        to_schema(Odd)

    with pytest.raises(InvalidParameterError, match="recursive"):
        to_schema(Node)


def test_pydantic_model_if_installed():
    pydantic = pytest.importorskip("pydantic")

    class Verdict(pydantic.BaseModel):
        label: Literal["yes", "no"]
        items: list[Item]
        score: float = pydantic.Field(ge=0, le=1)

    s = to_schema(Verdict)
    assert s.kind == "pydantic" and s.strict
    assert s.json["properties"]["items"]["items"]["properties"]["qty"]["type"] == "integer"
    v = s.parse('{"label": "no", "items": [{"name": "a", "qty": 1}], "score": 0.25}')
    assert isinstance(v, Verdict) and v.items[0].qty == 1
    with pytest.raises(SchemaError) as e:
        s.parse('{"label": "no", "items": [], "score": 3}')
    assert e.value.path == "score" and "above the maximum" in str(e.value)


def test_duck_typed_model_class():
    """Without pydantic: any class with model_json_schema() and model_validate() is taken as a model."""

    class Fake:
        @classmethod
        def model_json_schema(cls):
            return {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "title": "Fake"}

        @classmethod
        def model_validate(cls, value):
            obj = cls()
            obj.a = value["a"]
            return obj

    s = to_schema(Fake)
    assert s.kind == "pydantic" and s.json["additionalProperties"] is False
    assert s.parse('{"a": "x"}').a == "x"


def test_problems_name_every_field_path():
    s = to_schema(Order)
    with pytest.raises(SchemaError) as e:
        s.parse('{"label": "maybe", "items": [{"name": "a"}, {"name": 3, "qty": 1.5}], "mood": "sad", "x": 1}')
    found = {p.path: p.problem for p in e.value.problems}
    assert found["label"] == 'is "maybe", not one of "yes", "no"'
    assert found["items[0].qty"] == "is missing (required)"
    assert found["items[1].name"].endswith("not a string")
    assert "not an integer" in found["items[1].qty"]
    assert found["x"] == "is not a field of the schema"
    assert isinstance(e.value, WcodeError) and "items[0].qty: is missing" in str(e.value)


def test_integral_float_is_an_integer_and_int_a_number():
    s = to_schema("n: int, x: float")
    assert s.check({"n": 2.0, "x": 3}) == []


def test_answers_with_fences_prose_and_bad_json():
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json('Here you go: {"a": [1, 2]} Hope it helps.') == {"a": [1, 2]}
    text = '  {"a": "东京"}  '
    start, end = json_span(text)
    assert text[start:end] == '{"a": "东京"}'
    with pytest.raises(SchemaError, match="not valid JSON") as e:
        parse_json('{"a": 1,}')
    assert e.value.path == "(the answer)"
    with pytest.raises(SchemaError, match="empty"):
        parse_json("   ")


def test_format_path():
    assert format_path(("items", 2, "name")) == "items[2].name"
    assert format_path(()) == "(the answer)"
    assert format_path(("a b",)) == '["a b"]'


# -- the request, pure ------------------------------------------------------------------------------------------------
def test_shape_body_json_schema_and_the_fallback():
    from wcode_magic.core.schema import shape_body

    s = to_schema(SPEC)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    sent = shape_body(body, s, structured=True, fallback=False)
    assert sent["response_format"] == s.response_format() and sent["structured_outputs"] is True
    assert "structured_outputs" not in shape_body(body, s, structured=False, fallback=False)
    fallback = shape_body({**body, "structured_outputs": True}, s, structured=True, fallback=True)
    assert fallback["response_format"] == {"type": "json_object"} and "structured_outputs" not in fallback
    assert fallback["messages"][0]["role"] == "system" and '"label"' in fallback["messages"][0]["content"]
    assert body["messages"] == [{"role": "user", "content": "hi"}]  # the caller's body is left as it was


def test_instructions_join_an_existing_system_prompt():
    from wcode_magic.core.schema import with_instructions

    out = with_instructions([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}], "JSON!")
    assert out == [{"role": "system", "content": "Be brief.\n\nJSON!"}, {"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("status", "param", "message", "refused"),
    [
        (400, "response_format", "bad", True),
        (400, None, "This response_format type is unavailable now", True),
        (422, None, "json_schema is not supported", True),
        (400, "temperature", "temperature too high", False),
        (500, "response_format", "json_schema", False),
    ],
)
def test_what_counts_as_refusing_json_schema(status, param, message, refused):
    from wcode_magic.core.schema import is_format_refusal

    assert is_format_refusal(status, param, message) is refused


def test_check_call_refuses_both():
    from wcode_magic.core.schema import check_call

    check_call(to_schema(SPEC), {"response_format": None})
    with pytest.raises(InvalidParameterError, match="not both"):
        check_call(to_schema(SPEC), {"response_format": {"type": "json_object"}})
