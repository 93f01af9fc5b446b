"""Show code's ``%%chat`` cell, read back the way a kernel reads it: every setting the panel can hold round-trips.

The values are generated from the parameter declarations (``core/params.py``), so a parameter added there is
covered here; the strings lean towards what breaks a magic line: line breaks of every kind ``splitlines`` knows,
whitespace-only and padded values, leading dashes, quotes, JSON-looking text, unicode.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.inputtransformer2 import TransformerManager

from wcode_magic.core import catalog, params
from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.notebook import codegen, flags, magics, run

TRICKY = ["\n", "\r\n", "\r", " ", "  ", "\t", "-", "--", "-x", "-1", "-1e-05", '"', "'", "it's", '"quoted"', "[", "{",
          "[1]", '{"a": 1}', "#", ";", "$HOME", "`x`", "\\", "\\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c",
          "é", "答案", "🙂", "true", "--no-think", "%%chat"]  # fmt: skip
_text = st.one_of(st.sampled_from(TRICKY), st.text(min_size=1, max_size=12))
text = st.lists(_text, min_size=1, max_size=3).map("".join)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False), text
)
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3), max_leaves=6)  # fmt: skip
json_object = st.dictionaries(text, json_value, max_size=3)


def _for(p: params.Param) -> st.SearchStrategy[Any]:
    """Values ``p`` accepts, from its declaration (a new kind fails here, loudly)."""
    if p.kind == "float":
        return st.floats(p.min, p.max, allow_nan=False, allow_infinity=False)
    if p.kind == "int":
        return st.integers(None if p.min is None else int(p.min), None if p.max is None else int(p.max))
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "enum":
        return st.sampled_from(p.choices)
    if p.kind == "stop":
        return text | st.lists(text, min_size=1, max_size=4)
    if p.name == "logit_bias":
        bias = st.integers(-100, 100) | st.floats(-100, 100)
        return st.dictionaries(st.integers(0, 300_000).map(str), bias, max_size=4)
    if p.name == "response_format":
        schema = st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": json_object})
        return st.sampled_from([{"type": "text"}, {"type": "json_object"}]) | schema
    if p.kind == "object":
        return json_object
    if p.kind == "array":
        return st.lists(json_object, max_size=2)
    if p.kind == "choice":
        function = st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries({"name": text})}
        )
        return st.sampled_from(["none", "auto", "required"]) | function
    if p.kind == "reasoning":
        keys = {"enabled": st.booleans(), "effort": st.sampled_from(params.EFFORTS), "max_tokens": st.integers(1),
                "exclude": st.booleans()}  # fmt: skip
        return st.fixed_dictionaries({}, optional=keys).filter(bool)
    raise AssertionError(f"no strategy for {p.name} ({p.kind}): add one")


@st.composite
def panel_settings(draw: st.DrawFn) -> dict[str, Any]:
    """Any subset of the parameters, each within its declared range, as ``Controls.values()`` gives them."""
    chosen = draw(st.lists(st.sampled_from(list(params.PARAMS)), unique=True))
    values = {name: draw(_for(params.PARAMS[name])) for name in chosen}
    try:
        return params.validate(values, warn=False)  # what the panel would send (top_logprobs needs logprobs)
    except InvalidParameterError:
        assume(False)
        raise


models = st.sampled_from([m.id for m in catalog.MODELS]) | text.filter(codegen.fits_on_line)
systems = st.none() | text
extra_bodies = st.none() | json_object.filter(bool)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(panel_settings(), models, systems, extra_bodies, st.booleans())
def test_every_setting_round_trips_through_the_chat_line(values, model, system, extra_body, new) -> None:
    line = codegen.chat_line(model, system, values, extra_body, new=new)
    assert codegen.fits_on_line(line), line
    opts = flags.parse(line[len("%%chat") :])
    assert opts.params == values
    assert (opts.model, opts.extra_body, opts.new) == (model, extra_body or {}, new)
    if system and codegen.fits_on_line(system):
        assert opts.system == system
    else:
        assert opts.system is None
        if system:
            assert any("system prompt of several lines" in n for n in codegen.notes(system))


class _Shell:
    def __init__(self) -> None:
        self.user_ns: dict[str, Any] = {}


def _as_a_kernel_runs(cell: str) -> tuple[str, str]:
    """(line, body) of a cell, after IPython's input transformation with ours installed, as in a kernel."""
    manager = TransformerManager()
    manager.cleanup_transforms.append(magics.transform)
    call = ast.parse(manager.transform_cell(cell)).body[0].value.value  # await ....cell_async('chat', LINE, CELL)
    kind, line, body = (ast.literal_eval(arg) for arg in call.args)
    assert kind == "chat"
    return line, body


# A cell's body cannot carry blank or whitespace-only lines at its ends (IPython empties them, ``%%chat`` drops
# them): the prompt's own ends are not settings, so they are left out here.
prompts = text.map(str.strip).filter(bool)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(prompts, panel_settings(), models, systems.filter(lambda s: s is None or codegen.fits_on_line(s)), extra_bodies)
def test_the_cell_sends_the_request_the_panel_sends(prompt, values, model, system, extra_body) -> None:
    line, body = _as_a_kernel_runs(codegen.chat_cell(prompt, model, system, values, extra_body, new=True))
    sent = run.prepare(_Shell(), flags.parse(line), body, conversation=False).kwargs
    assert sent["prompt_or_messages"] == prompt
    assert (sent["model"], sent["system"], sent["extra_body"]) == (catalog.resolve(model), system, extra_body)
    assert {k: sent[k] for k in values} == values


@pytest.mark.parametrize(
    ("values", "written"),
    [
        ({"stop": "\n"}, "--stop '\"\\n\"'"),
        ({"stop": " "}, "--stop '\" \"'"),
        ({"stop": "-x"}, "--stop=-x"),
        ({"stop": ["\n\n", "-"]}, '--stop \'["\\n\\n", "-"]\''),
        ({"frequency_penalty": -1e-05}, "--frequency-penalty=-1e-05"),
        ({"seed": -3}, "--seed=-3"),
        ({"stop": "a\u2028b"}, "--stop '\"a\\u2028b\"'"),
    ],
)
def test_values_a_magic_line_would_break_are_written_so_they_read_back(values, written) -> None:
    line = codegen.chat_line(params=values)
    assert written in line and flags.parse(line[len("%%chat") :]).params == values
