"""Parameter declarations: ranges from the seed pages, clear errors before sending."""

from __future__ import annotations

import inspect
import warnings

import pytest

from wcode_magic.core import catalog, client, params
from wcode_magic.core.errors import InvalidParameterError, WcodeWarning


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("temperature", 2.5, "from 0 to 2"),
        ("temperature", -0.1, "from 0 to 2"),
        ("top_p", 1.5, "from 0 to 1"),
        ("top_k", -1, ">= 0"),
        ("top_k", 2.5, "an integer"),
        ("frequency_penalty", 3, "from -2 to 2"),
        ("presence_penalty", -2.1, "from -2 to 2"),
        ("repetition_penalty", 2.1, "from 0 to 2"),
        ("min_p", 1.1, "from 0 to 1"),
        ("top_a", -0.5, "from 0 to 1"),
        ("max_tokens", 0, ">= 1"),
        ("top_logprobs", 21, "from 0 to 20"),
        ("logprobs", "yes", "true or false"),
        ("verbosity", "loud", "low | medium | high"),
        ("logit_bias", {"42": 150}, 'token ids (integers as strings, like "1234") to biases from -100 to 100'),
        ("logit_bias", {"the": 200}, 'token ids (integers as strings, like "1234") to biases from -100 to 100'),
        ("logit_bias", {"42": "high"}, "biases from -100 to 100"),
        ("response_format", {"type": "xml"}, '"type" is text, json_object or json_schema'),
        ("response_format", {"type": "json_schema"}, 'with a "json_schema" object'),
        ("stop", [], "list of up to 4"),
        ("temperature", True, "a number"),
        ("reasoning", {"effort": "max"}, "effort"),
    ],
)
def test_out_of_range_values_name_parameter_value_and_range(name, value, allowed):
    with pytest.raises(InvalidParameterError) as info:
        params.validate({name: value})
    message = str(info.value)
    assert name in message and repr(value) in message and allowed in message
    assert info.value.param == name


def test_seed_page_ranges_and_defaults():
    p = params.PARAMS
    assert (p["temperature"].min, p["temperature"].max, p["temperature"].default) == (0, 2, 1.0)
    assert (p["top_p"].min, p["top_p"].max, p["top_p"].default) == (0, 1, 1.0)
    assert (p["repetition_penalty"].max, p["repetition_penalty"].default) == (2, 1.0)
    assert p["verbosity"].choices == ("low", "medium", "high") and p["verbosity"].default == "medium"
    assert p["parallel_tool_calls"].default is True
    assert p["top_logprobs"].max == 20


def test_top_logprobs_needs_logprobs():
    with pytest.raises(InvalidParameterError, match="needs logprobs=true"):
        params.validate({"top_logprobs": 5})
    assert params.validate({"top_logprobs": 5, "logprobs": True}) == {"top_logprobs": 5, "logprobs": True}


def test_unknown_name_suggests():
    with pytest.raises(InvalidParameterError, match="Did you mean 'top_p'"):
        params.validate({"topp": 0.5})


def test_values_are_normalised_and_none_means_unset():
    body = params.validate({"temperature": 1, "max_tokens": 10.0, "seed": None, "reasoning": False, "stop": "##"})
    assert body == {"temperature": 1.0, "max_tokens": 10, "reasoning": {"enabled": False}, "stop": "##"}
    assert isinstance(body["temperature"], float)


def test_parse_from_text():
    assert params.get("top-k").parse("20") == 20
    assert params.get("logprobs").parse("on") is True
    assert params.get("logit_bias").parse('{"1": -100}') == {"1": -100}
    assert params.get("stop").parse('["a", "b c"]') == ["a", "b c"]
    with pytest.raises(InvalidParameterError, match="not valid JSON"):
        params.get("logit_bias").parse("{1: -100")
    with pytest.raises(InvalidParameterError, match="temperature='hot'"):
        params.get("temperature").parse("hot")


def test_reasoner_ignoring_sampling_warns_once():
    r1 = catalog.lookup("r1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params.validate({"temperature": 0.3, "top_p": 0.9, "presence_penalty": 1}, r1)
    ours = [w for w in caught if issubclass(w.category, WcodeWarning)]
    assert len(ours) == 1
    assert "temperature, top_p, presence_penalty" in str(ours[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params.validate({"temperature": 0.3}, catalog.lookup("qwen3"))  # a model that honours it: no warning


def test_every_seed_parameter_is_declared():
    import re
    from pathlib import Path

    seeds = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    text = "\n".join(p.read_text(encoding="utf-8") for p in seeds.glob("*.txt"))
    documented = set(re.findall(r"参数:(\w+)", text))
    assert documented and documented <= set(params.PARAMS)


class _Unacceptable:
    """A value no parameter accepts, with a stable repr for the message."""

    def __repr__(self) -> str:
        return "<unacceptable>"


@pytest.mark.parametrize("name", list(params.PARAMS))
def test_allowed_reads_naturally_for_every_parameter(name):
    p = params.PARAMS[name]
    allowed = p.allowed
    assert allowed and allowed == allowed.strip() and "  " not in allowed
    for word in ("inf", "None", "nan"):
        assert word not in allowed.split(), (name, allowed)
    assert "-inf" not in allowed and "None" not in allowed
    if p.kind in ("int", "float"):
        what = "an integer" if p.kind == "int" else "a number"
        if p.min is not None and p.max is not None:
            assert allowed == f"{what} from {p.min:g} to {p.max:g}"
        elif p.min is not None:
            assert allowed == f"{what} >= {p.min:g}"
        elif p.max is not None:
            assert allowed == f"{what} <= {p.max:g}"
        else:
            assert allowed == what
    elif p.kind == "enum":
        assert allowed == " | ".join(p.choices)
    else:
        assert allowed.split()[0] in ("a", "an", "true", "true/false,", "none"), allowed
    with pytest.raises(InvalidParameterError) as info:
        params.validate({name: _Unacceptable()})
    assert str(info.value) == f"{name}=<unacceptable> is not allowed: {name} takes {allowed}."


def test_unbounded_seed_takes_an_integer():
    assert params.PARAMS["seed"].allowed == "an integer"
    with pytest.raises(InvalidParameterError) as info:
        params.validate({"seed": 1.5})
    assert str(info.value) == "seed=1.5 is not allowed: seed takes an integer."
    assert params.validate({"seed": -(2**40)}) == {"seed": -(2**40)}


def test_logit_bias_keys_are_token_ids_for_catalog_models_but_local_ones_take_text():
    body = params.validate({"logit_bias": {"42": -100, 7: 5}}, catalog.lookup("qwen3"))
    assert body == {"logit_bias": {"42": -100, "7": 5}}
    with pytest.raises(InvalidParameterError) as info:
        params.validate({"logit_bias": {"the": 5}}, catalog.lookup("qwen3"))
    message = str(info.value)
    assert "'the' is not a token id" in message and "integers as strings" in message and "qwen/qwen3-8b" in message
    assert params.validate({"logit_bias": {"the": 5}}, catalog.lookup("local")) == {"logit_bias": {"the": 5}}
    assert params.validate({"logit_bias": {"the": 5}}) == {"logit_bias": {"the": 5}}  # unknown server: as given


def test_response_format_types_follow_the_seed_pages():
    for fmt in ({"type": "text"}, {"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x"}}):
        assert params.validate({"response_format": fmt}) == {"response_format": fmt}


def test_max_tokens_above_a_catalog_models_context_is_rejected():
    r1 = catalog.lookup("r1")
    with pytest.raises(InvalidParameterError) as info:
        params.validate({"max_tokens": r1.context + 1}, r1)
    message = str(info.value)
    assert info.value.param == "max_tokens" and info.value.value == r1.context + 1
    assert f"max_tokens={r1.context + 1}" in message and "deepseek-r1" in message and f"{r1.context:,}" in message
    assert "minus the prompt" in message
    assert params.validate({"max_tokens": r1.context}, r1) == {"max_tokens": r1.context}
    assert params.validate({"max_tokens": 10**7}) == {"max_tokens": 10**7}  # no model known: nothing to check


def test_a_misspelt_keyword_suggests_the_callers_own_keywords():
    for typo, meant in (("modle", "model"), ("sytem", "system"), ("base_ulr", "base_url"), ("on_evnt", "on_event")):
        with pytest.raises(InvalidParameterError, match=f"Did you mean '{meant}'"):
            params.validate({typo: 1}, also=params.CHAT_KEYWORDS)


@pytest.mark.parametrize("function", [client.chat, client.achat], ids=["chat", "achat"])
def test_chat_and_achat_take_exactly_the_declared_keywords(function):
    own = [p.name for p in inspect.signature(function).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert tuple(own) == params.CHAT_KEYWORDS


# -- what JSON can carry (core/sendable.py): the pure check behind every parameter and the whole body ------------
def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"a": float("nan")}, ['x["a"]=nan', "NaN or Infinity"]),
        ([1, (2, float("-inf"))], ["x[1][1]=-inf"]),
        ({"k": {"\udc80": 1}}, ['x["k"]', "lone surrogate", "character 0"]),
        ({"t": "ok \ud83d"}, ['x["t"]', "lone surrogate '\\ud83d' at character 3"]),
        ({"n": 2**63}, ['x["n"]=9223372036854775808', "64 bits"]),
        ({"n": -(2**63) - 1}, ["64 bits"]),
        ({"s": {1}}, ['x["s"]={1}', "not set"]),
        ({"o": object()}, ['x["o"]=<object object', "not object"]),
        ({(1, 2): "tuple key"}, ["x=", "keys are strings", "not tuple"]),
        ({float("inf"): 1}, ["NaN or Infinity, not even as a key"]),
        (_nested(101), ["x[0][0][0]...", "deeper than 100"]),
    ],
)
def test_check_json_names_the_place_and_the_problem(value, words):
    from wcode_magic.core.sendable import check_json

    with pytest.raises(InvalidParameterError) as info:
        check_json(value, "x")
    assert info.value.param == "x"
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        _nested(100),
        {"a": (1, 2.5, None, True), 3: "int key", 2.5: "float key", None: "null key"},
        {"big": 2**63 - 1, "small": -(2**63), "emoji": "😀", "cjk": "笔记", "zero width": "\u200b"},
        [{"same": [1]}] * 3,  # shared, not self-referencing
    ],
)
def test_check_json_passes_what_json_sends(value):
    from wcode_magic.core.sendable import check_json

    check_json(value, "x")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "strict": float("nan")}}], ['tools[0]["function"]']),
        ("tool_choice", {"type": "function", "function": {"name": "f\ud800"}}, ["tool_choice", "lone surrogate"]),
        ("response_format", {"type": "json_object", "x": [float("inf")]}, ['response_format["x"][0]=inf']),
        ("stop", "end\udfff", ["stop", "lone surrogate"]),
        ("seed", 10**20, ["seed=100000000000000000000", "64 bits"]),
        ("top_k", 2**70, ["top_k=", "64 bits"]),
    ],
)
def test_a_parameter_that_json_cannot_carry_is_refused_when_checked(name, value, words):
    with pytest.raises(InvalidParameterError) as info:
        params.PARAMS[name].check(value)
    assert info.value.param == name
    for word in words:
        assert word in str(info.value)
