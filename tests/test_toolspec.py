"""Python functions as tools (core/toolspec.py): schemas from signatures and docstrings, arguments checked."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.core.toolspec import (
    ToolArgumentError,
    as_tools,
    check_arguments,
    parse_docstring,
    runs_tools,
    tool_from_function,
)


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclass
class Place:
    """A place on the map."""

    city: str
    country: str = "FR"


def weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS, detail: Literal["short", "long"] = "short") -> str:
    """Forecast for a city.

    Args:
        city: The city's name, such as "Paris".
        days (int): How many days ahead,
            from 1 to 7.
        unit: Temperature unit.
    """
    return f"{city} {days} {unit.value} {detail}"


def test_schema_from_signature_hints_and_google_docstring():
    tool = tool_from_function(weather)
    assert tool.name == "weather" and tool.description == "Forecast for a city."
    p = tool.parameters
    assert p["type"] == "object" and p["required"] == ["city"] and p["additionalProperties"] is False
    props = p["properties"]
    assert props["city"] == {"type": "string", "description": 'The city\'s name, such as "Paris".'}
    assert props["days"] == {"type": "integer", "description": "How many days ahead, from 1 to 7.", "default": 1}
    assert props["unit"] == {
        "type": "string",
        "enum": ["celsius", "fahrenheit"],
        "description": "Temperature unit.",
        "default": "celsius",
    }
    assert props["detail"] == {"type": "string", "enum": ["short", "long"], "default": "short"}
    assert tool.spec == {
        "type": "function",
        "function": {"name": "weather", "description": "Forecast for a city.", "parameters": p},
    }


def test_schema_of_containers_optionals_floats_bools_and_dataclasses():
    def f(
        xs: list[int],
        tags: dict[str, float],
        flag: bool,
        note: Optional[str] = None,  # noqa: UP045 - typing.Optional is what many users write
        where: Place | None = None,
    ) -> None:
        """Do things."""

    props = tool_from_function(f).parameters["properties"]
    assert props["xs"] == {"type": "array", "items": {"type": "integer"}}
    assert props["tags"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["flag"] == {"type": "boolean"}
    assert props["note"] == {"type": ["string", "null"], "default": None}
    place = props["where"]["anyOf"][0]
    assert place["properties"] == {"city": {"type": "string"}, "country": {"type": "string"}}
    assert place["required"] == ["city"] and place["description"] == "A place on the map."
    assert tool_from_function(f).parameters["required"] == ["xs", "tags", "flag"]


def test_numpy_and_rest_docstrings():
    numpy_doc = """Look a word up.

    Parameters
    ----------
    word : str
        The word to look up,
        in lower case.
    limit : int
        At most this many.

    Returns
    -------
    str
    """
    assert parse_docstring(numpy_doc) == (
        "Look a word up.",
        {"word": "The word to look up, in lower case.", "limit": "At most this many."},
    )
    rest_doc = """Add two numbers.

    :param a: the first
    :param int b: the second
    :returns: the sum
    """
    assert parse_docstring(rest_doc) == ("Add two numbers.", {"a": "the first", "b": "the second"})
    assert parse_docstring("") == ("", {})


try:
    import pydantic
except ImportError:  # pragma: no cover - depends on the environment
    pydantic = None
else:

    class Order(pydantic.BaseModel):
        item: str
        qty: int = 1

    def order(o: Order) -> str:
        return f"{o.qty} x {o.item}"


@pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")
def test_pydantic_parameters_when_importable():
    tool = tool_from_function(order)
    assert tool.parameters["properties"]["o"]["properties"]["qty"]["type"] == "integer"
    made = check_arguments(tool, '{"o": {"item": "tea", "qty": 2}}')
    assert order(**made) == "2 x tea"
    with pytest.raises(ToolArgumentError, match="does not fit Order"):
        check_arguments(tool, '{"o": {"qty": "many"}}')


def test_plain_tool_dicts_are_kept_and_do_not_run():
    spec = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    tools = as_tools([spec, weather])
    assert [t.name for t in tools] == ["lookup", "weather"]
    assert tools[0].fn is None and not tools[0].runs and tools[1].runs
    assert tools[0].spec == spec
    assert not runs_tools([spec]) and runs_tools([spec, weather]) and not runs_tools(None)


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("weather", "takes a list"),
        ([42], r"tools\[0\]=42 is not allowed"),
        ([{"type": "function"}], "is not an OpenAI tool dict"),
        ([weather, weather], "'weather' is given twice"),
        ([lambda x: x], "cannot be a tool's name"),
    ],
)
def test_bad_tools_are_refused_by_name(tools, message):
    with pytest.raises(InvalidParameterError, match=message):
        as_tools(tools)


def place(p: Place, xs: tuple[int, int] = (0, 0)) -> str:
    return p.city


def test_arguments_are_checked_and_converted():
    tool = tool_from_function(weather)
    made = check_arguments(tool, '{"city": "Paris", "days": 3.0, "unit": "fahrenheit"}')
    assert made == {"city": "Paris", "days": 3, "unit": Unit.FAHRENHEIT}
    assert weather(**made) == "Paris 3 fahrenheit short"
    assert check_arguments(tool, {"city": "Oslo"}) == {"city": "Oslo"}

    made = check_arguments(tool_from_function(place), '{"p": {"city": "Rome"}, "xs": [1, 2]}')
    assert made == {"p": Place("Rome"), "xs": (1, 2)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"city": "Paris",', "not valid JSON"),
        ("[1, 2]", "must be a JSON object of named arguments, not list"),
        ("{}", "weather needs the argument 'city'; it was called without it"),
        ('{"city": "Paris", "cty": 1}', r"weather has no argument 'cty' \(its arguments: city, days, unit, detail\)"),
        ('{"city": 5}', "weather: argument 'city' must be a string, not 5"),
        ('{"city": "x", "days": "two"}', "argument 'days' must be an integer, not \"two\""),
        ('{"city": "x", "days": true}', "argument 'days' must be an integer, not true"),
        ('{"city": "x", "unit": "kelvin"}', 'must be one of "celsius", "fahrenheit"'),
        ('{"city": "x", "detail": "medium"}', 'must be one of "short", "long"'),
    ],
)
def test_arguments_that_do_not_fit_say_why(raw, message):
    with pytest.raises(ToolArgumentError, match=message):
        check_arguments(tool_from_function(weather), raw)


def test_list_items_and_nested_fields_are_named():
    def f(xs: list[int], p: Place) -> None:
        pass

    tool = tool_from_function(f)
    with pytest.raises(ToolArgumentError, match=r"argument 'xs'\[1\] must be an integer"):
        check_arguments(tool, '{"xs": [1, "a"], "p": {"city": "x"}}')
    with pytest.raises(ToolArgumentError, match=r"argument 'p' has no field 'town'"):
        check_arguments(tool, '{"xs": [], "p": {"town": "x"}}')
    with pytest.raises(ToolArgumentError, match=r"argument 'p'.city must be a string"):
        check_arguments(tool, '{"xs": [], "p": {"city": 1}}')
