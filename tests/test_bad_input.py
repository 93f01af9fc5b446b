"""Bad input is a named error before anything is sent (issue 17, item 10).

One table per entry point. Each case is the call, the error class and the words its message must contain (the
parameter, the place inside it, what is wrong); every call is aimed at a fresh bundled local server that counts
the requests it receives, and the count must not move. The control test sends the same calls with the bad value
fixed and sees the count move, so the counter can fail.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

import wcode_magic as wm
from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.notebook import commands, flags
from wcode_magic.notebook.run import CellError

NAN, INF = math.nan, math.inf
SECRET = "sk-this-must-never-be-shown-0123456789"


def _tool(**parameters: object) -> list[dict]:
    return [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", **parameters}}}]


def _deep(levels: int) -> list:
    out: list = []
    for _ in range(levels):
        out = [out]
    return out


_loop: dict = {"a": 1}
_loop["self"] = _loop

# (id, prompt, keyword arguments of wm.chat / wm.achat, words the message must contain)
CHAT_CASES = [
    # NaN and Infinity anywhere in the body
    ("tools-nan", "hi", {"tools": _tool(minimum=NAN)}, ['tools[0]["function"]["parameters"]["minimum"]=nan', "NaN"]),
    (
        "response-format-inf",
        "hi",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"maximum": INF}}}},
        ['response_format["json_schema"]["schema"]["maximum"]=inf', "finite"],
    ),
    (
        "tool-choice-ninf",
        "hi",
        {"tool_choice": {"type": "function", "function": {"name": "f", "w": -INF}}},
        ['tool_choice["function"]["w"]=-inf'],
    ),
    ("extra-body-nan", "hi", {"extra_body": {"a": [NAN]}}, ['extra_body["a"][0]=nan', "NaN or Infinity"]),
    ("messages-nan", [{"role": "user", "content": "hi", "weight": NAN}], {}, ['messages[0]["weight"]=nan']),
    ("logit-bias-nan", "hi", {"logit_bias": {"1": NAN}}, ["logit_bias=", "nan", "-100 to 100"]),
    # lone surrogates (half an emoji, surrogateescape)
    ("prompt-surrogate", "cut emoji \ud83d", {}, ["prompt", "lone surrogate", "'\\ud83d'", "character 10"]),
    ("system-surrogate", "hi", {"system": "be \udc80 brief"}, ["system", "lone surrogate", "character 3"]),
    ("stop-surrogate", "hi", {"stop": ["ok", "\ud800"]}, ["stop[1]", "lone surrogate"]),
    ("messages-surrogate", [{"role": "user", "content": "x\udfff"}], {}, ['messages[0]["content"]', "UTF-8"]),
    ("extra-body-key-surrogate", "hi", {"extra_body": {"k\ud800": 1}}, ["extra_body", "lone surrogate"]),
    ("model-surrogate", "hi", {"model": "local/\ud800"}, ["model", "lone surrogate"]),
    # what JSON has no form for, or servers cannot read
    ("extra-body-deep", "hi", {"extra_body": {"a": _deep(1000)}}, ['extra_body["a"][0][0]', "deeper than 100"]),
    ("extra-body-self", "hi", {"extra_body": {"loop": _loop}}, ['extra_body["loop"]["self"]', "contains itself"]),
    ("tools-set", "hi", {"tools": _tool(enum={1, 2})}, ['["enum"]={1, 2}', "not set"]),
    ("extra-body-bytes", "hi", {"extra_body": {"b": b"raw"}}, ['extra_body["b"]', "not bytes"]),
    ("seed-beyond-64-bits", "hi", {"seed": 2**64}, ["seed=18446744073709551616", "64 bits"]),
    ("reasoning-beyond-64-bits", "hi", {"reasoning": {"max_tokens": 10**30}}, ['reasoning["max_tokens"]', "64 bits"]),
    # times no clock can wait (OverflowError in the socket layer before): the settings' own bounds, per call too
    ("timeout-huge", "hi", {"timeout": 1e300}, ["timeout=1e+300", "from 0.1 to 3600"]),
    ("timeout-nan", "hi", {"timeout": float("nan")}, ["timeout=nan", "seconds"]),
    ("deadline-huge", "hi", {"deadline": 1e300}, ["deadline=1e+300", "from 0.1 to 86400"]),
    # headers HTTP cannot carry
    ("header-name-space", "hi", {"headers": {"X Title": "a"}}, ["headers key 'X Title'", "header name"]),
    ("header-name-colon", "hi", {"headers": {"X-A:b": "a"}}, ["headers key 'X-A:b'", "no spaces or colons"]),
    ("header-name-empty", "hi", {"headers": {"": "a"}}, ["headers key ''", "non-empty"]),
    ("header-value-crlf", "hi", {"headers": {"X-A": "a\r\nX-Evil: 1"}}, ["headers['X-A']", "'\\r'", "line breaks"]),
    ("header-value-accent", "hi", {"headers": {"X-Title": "café"}}, ["headers['X-Title']", "'é'", "ASCII"]),
    ("header-value-cjk", "hi", {"headers": {"X-Title": "笔记"}}, ["headers['X-Title']", "'笔'", "character 0"]),
    ("header-value-int", "hi", {"headers": {"X-N": 3}}, ["headers['X-N']", "int", "strings"]),
    ("headers-not-a-dict", "hi", {"headers": [("X-A", "b")]}, ["headers", "list", "dict of header names"]),
    # extra_body, model, stream of the wrong type
    ("extra-body-list", "hi", {"extra_body": [1, 2]}, ["extra_body=[1, 2]", "dict of top-level body fields"]),
    ("extra-body-str", "hi", {"extra_body": "top_k=3"}, ["extra_body='top_k=3'", "dict"]),
    ("extra-body-int-key", "hi", {"extra_body": {1: 2}}, ["extra_body={1: 2}", "string keys"]),
    ("model-int", "hi", {"model": 3}, ["model=3", "model id"]),
    ("model-list", "hi", {"model": ["local/ngram"]}, ["model=['local/ngram']", "model id"]),
    ("model-empty", "hi", {"model": ""}, ["model=''", "model id", "None"]),
    ("model-blank", "hi", {"model": " \t"}, ["model=' \\t'", "model id"]),
    ("stream-str", "hi", {"stream": "yes"}, ["stream='yes'", "True or False"]),
    ("stream-int", "hi", {"stream": 1}, ["stream=1", "True or False"]),
    ("stream-none", "hi", {"stream": None}, ["stream=None", "True or False"]),
    # empty prompts (the magics already refuse them)
    ("prompt-empty", "", {}, ["prompt ''", "empty"]),
    ("prompt-blank", "  \n\t", {}, ["prompt '  \\n\\t'", "empty"]),
    # a port no server can listen on
    ("port-0", "hi", {"base_url": "http://127.0.0.1:0/v1"}, ["base_url='http://127.0.0.1:0/v1'", "1 to 65535"]),
    ("port-65536", "hi", {"base_url": "http://127.0.0.1:65536/v1"}, ["base_url=", "65535"]),
    ("port-huge", "hi", {"base_url": "http://localhost:99999999/v1"}, ["base_url=", "port"]),
]


def _call(transport: str, prompt: object, kw: dict) -> object:
    if transport == "sync":
        return wm.chat(prompt, **kw)
    return asyncio.run(wm.achat(prompt, **kw))


@pytest.mark.parametrize(("prompt", "kw", "words"), [c[1:] for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES])
def test_chat_refuses_bad_input_before_sending(counted_local, session, transport, prompt, kw, words):
    kw = {"base_url": counted_local.base_url, "model": "local/ngram", "max_tokens": 5, **kw}
    before = counted_local.count
    with pytest.raises(InvalidParameterError) as info:
        _call(transport, prompt, kw)
    message = str(info.value)
    for word in words:
        assert word in message
    assert "\n" not in message and info.value.param
    assert counted_local.count == before


def test_a_header_holding_the_key_is_refused_without_showing_it(counted_local, session):
    before = counted_local.count
    with pytest.raises(InvalidParameterError) as info:
        wm.chat("hi", base_url=counted_local.base_url, headers={"Authorization": f"Bearer {SECRET}\n"})
    assert "headers['Authorization']" in str(info.value) and "'\\n'" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value) and info.value.value is None
    assert counted_local.count == before


# (id, call given the server's base URL, error class, words)
OTHER_CASES = [
    (
        "compare-grid-too-large",
        lambda url: wm.compare("hi", temperature=[i / 100 for i in range(101)], seed=range(100), n=2, base_url=url),
        InvalidParameterError,
        ["20,200 runs", "1 model x 101 temperature x 100 seed x 2 n", "10,000"],
    ),
    (
        "compare-huge-axis",
        lambda url: wm.compare("hi", seed=range(10**12), base_url=url),
        InvalidParameterError,
        ["seed has 1,000,000,000,000 values", "10,000"],
    ),
    (
        "compare-endless-axis",
        lambda url: wm.compare("hi", grid={"top_k": itertools.count(1)}, base_url=url),
        InvalidParameterError,
        ["top_k has more than 10,000 values"],
    ),
    (
        "compare-huge-n",
        lambda url: wm.compare("hi", models=["local/ngram", "local/ngram-thinking"], n=10**9, base_url=url),
        InvalidParameterError,
        ["2,000,000,000 runs", "2 model x 1,000,000,000 n"],
    ),
    (
        "batch-too-many",
        lambda url: wm.batch(["a", "b", "c"], n=4000, base_url=url),
        InvalidParameterError,
        ["12,000 runs", "3 prompts x 4,000 n"],
    ),
    (
        "batch-endless-prompts",
        lambda url: wm.batch((f"q{i}" for i in itertools.count()), base_url=url),
        InvalidParameterError,
        ["prompts has more than 10,000 values"],
    ),
    (
        "compare-nan-in-tools",
        lambda url: wm.compare("hi", temperature=[0, 1], tools=_tool(x=NAN), base_url=url, model="local/ngram"),
        InvalidParameterError,
        ['tools[0]["function"]["parameters"]["x"]=nan'],
    ),
    (
        "compare-bad-header",
        lambda url: wm.compare("hi", temperature=[0, 1], headers={"X-A": "b\n"}, base_url=url, model="local/ngram"),
        InvalidParameterError,
        ["headers['X-A']", "line breaks"],
    ),
    (
        "batch-blank-prompt",
        lambda url: wm.batch(["fine", "   "], base_url=url, model="local/ngram"),
        InvalidParameterError,
        ["prompt '   '", "empty"],
    ),
    (
        "configure-nan",
        lambda url: wm.configure(response_format={"type": "json_object", "extra": NAN}),
        InvalidParameterError,
        ['response_format["extra"]=nan'],
    ),
    (
        "set-tools-nan",
        lambda url: commands.dispatch('set tools=\'[{"type": "function", "bound": NaN}]\''),
        CellError,
        ["%wcode set", 'tools[0]["bound"]=nan', "NaN or Infinity"],
    ),
    (
        "set-stop-surrogate",
        lambda url: commands.dispatch('set stop=\'["ok", "\\ud800"]\''),
        CellError,
        ["%wcode set", "stop[1]", "lone surrogate"],
    ),
    (
        "set-extra-infinity",
        lambda url: commands.dispatch("set logit_bias='{\"1\": Infinity}'"),
        CellError,
        ["%wcode set", "logit_bias={'1': inf}", "-100 to 100"],
    ),
    ("out-keyword", lambda url: flags.parse("-o class"), flags.FlagError, ["-o/--out 'class'", "keyword"]),
    ("out-none", lambda url: flags.parse("-o None"), flags.FlagError, ["-o/--out 'None'", "keyword"]),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES])
def test_sweeps_settings_and_flags_refuse_bad_input_before_sending(counted_local, session, call, error, words):
    stored = dict(session.params)
    before = counted_local.count
    with pytest.raises(error) as info:
        call(counted_local.base_url)
    message = str(info.value)
    for word in words:
        assert word in message
    assert counted_local.count == before
    assert session.params == stored  # nothing bad was kept to break a later call


def test_after_a_refused_set_the_next_call_still_goes_out(counted_local, session):
    with pytest.raises(CellError):
        commands.dispatch('set tools=\'[{"type": "function", "bound": NaN}]\'')
    before = counted_local.count
    r = wm.chat("hi", base_url=counted_local.base_url, model="local/ngram", max_tokens=5)
    assert r.complete and counted_local.count == before + 1


# the control: the same kinds of values, fixed, reach the server and are answered
GOOD = [
    ("hi", {"tools": _tool(minimum=0.5), "extra_body": {"a": [1.5], "nested": _deep(20)}}),
    ("cut emoji \U0001f600", {"system": "be brief", "stop": ["ok", "\n\n"], "seed": 2**63 - 1}),
    ([{"role": "user", "content": "x", "weight": 1.0}], {"headers": {"X-Title": "my notebook", "X-A": "a\tb"}}),
    ("hi", {"stream": False}),
]


@pytest.mark.parametrize(("prompt", "kw"), GOOD)
def test_the_same_calls_with_good_values_are_sent(counted_local, session, transport, prompt, kw):
    before = counted_local.count
    r = _call(transport, prompt, {"base_url": counted_local.base_url, "model": "local/ngram", "max_tokens": 5, **kw})
    assert r.complete and r.text
    assert counted_local.count == before + 1


def test_a_sweep_at_the_limit_is_not_refused_for_its_size(session):
    from wcode_magic.analysis import sweeps

    fixed = {"model": "local/ngram"}
    cells, _ = sweeps._compare_cells(sweeps.check_compare("hi", None, [0, 1], range(5000), fixed=fixed))
    assert len(cells) == sweeps.MAX_RUNS == 10_000
    with pytest.raises(InvalidParameterError, match="10,002 runs"):
        sweeps.check_compare("hi", None, [0, 1], range(5001), fixed=fixed)
