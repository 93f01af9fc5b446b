"""Prompt interpolation: known names filled once, every other brace left exactly as written."""

from types import SimpleNamespace

import pytest

from wcode_magic.notebook.interpolate import interpolate

NS = {
    "name": "Ada",
    "n": 3,
    "pi": 3.14159,
    "obj": SimpleNamespace(attr=SimpleNamespace(deep="inner"), braces="{name}"),
    "d": {"k": 1},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello {name}, {n} times", "Hello Ada, 3 times"),
        ("{obj.attr.deep}", "inner"),
        ("{pi:.2f} {name!r}", "3.14 'Ada'"),
        ("{{name}} stays", "{name} stays"),
        ("unknown {nobody} and {obj.missing}", "unknown {nobody} and {obj.missing}"),
        ("def f():\n    return {}\n", "def f():\n    return {}\n"),
        ('payload = {"a": {"b": [1, 2]}}', 'payload = {"a": {"b": [1, 2]}}'),
        ('{"name": "x", "n": 1}', '{"name": "x", "n": 1}'),
        ("f'{name}' in code", "f'Ada' in code"),
        ("{ name }", "{ name }"),
        ("{name:bad-spec}", "{name:bad-spec}"),
        ("lone {{ here", "lone { here"),  # {{ is a literal {, paired or not, as in str.format
        ("a }} b", "a } b"),
        ("{{ a }} pair", "{ a } pair"),
        ("{{{n}}}", "{3}"),  # an escape around a field, as in str.format
        ("{{{{n}}}}", "{{n}}"),
        ("{{n}", "{n}"),
        ("{{'k': {n}}}", "{'k': 3}"),  # a dict around a field, written str.format's way
        ('{"value": {n}}', '{"value": 3}'),  # ... or left as a dict, known fields inside still filled
        ('{"a": {"b": {"c": 1}}}', '{"a": {"b": {"c": 1}}}'),  # }}} closing nested objects is not an escape
        ("function f() { if (a) { return 1; }}", "function f() { if (a) { return 1; }}"),
        ("{% for x in xs %}{{ x }}{% endfor %}", "{% for x in xs %}{ x }{% endfor %}"),  # Jinja: --no-interpolate
        ("unclosed { and {n}", "unclosed { and 3"),
        ("a } b", "a } b"),
        ("set literal {d}", "set literal {'k': 1}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected


@pytest.mark.parametrize(
    "text",
    ["{name} {{ {n} }}", "{{{name}}}", "{pi:.2f} {{}} {{{{", "{{ and }} and {{{n}}} }}}}"],
)
def test_agrees_with_str_format_whenever_format_succeeds(text: str) -> None:
    assert interpolate(text, NS) == text.format(**NS)


def test_values_are_not_expanded_twice() -> None:
    # obj.braces is the text "{name}": it is inserted as is, not filled again
    assert interpolate("{obj.braces}", NS) == "{name}"


def test_raising_property_is_left_alone() -> None:
    class Boom:
        @property
        def attr(self) -> str:
            raise RuntimeError("no")

    assert interpolate("{b.attr}", {"b": Boom()}) == "{b.attr}"


def test_doubled_braces_inside_a_json_example_are_template_text_not_a_field() -> None:
    # inside a block (braces that are structure) {{name}} is kept as written, never filled
    assert (
        interpolate('{"greeting": "Hello {{name}}", "n": {n}}', NS)
        == '{"greeting": "Hello {{name}}", "n": ' + str(NS["n"]) + "}"
    )
