"""wm.compare / wm.batch before anything is sent: their argument checks, one run's row, the keywords they pass on.

Pure functions, no server: ``check_compare`` / ``check_batch`` (every check of the sweep's own arguments, each error
naming the parameter, its value and what is allowed), ``run_row`` (one run's result columns, the shared ones from
``rows.response_row``), and the call keywords, declared once in ``params.CHAT_KEYWORDS``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from wcode_magic.analysis import sweeps
from wcode_magic.analysis.rows import response_row
from wcode_magic.core import params
from wcode_magic.core.errors import InvalidParameterError, ServerError, StreamError
from wcode_magic.core.response import Response


# -- compare's arguments ------------------------------------------------------------------------------------
def test_check_compare_orders_the_axes_and_splits_the_fixed_settings():
    fixed = {"model": "local/ngram", "system": "Be brief.", "headers": {"X-A": "1"}, "max_tokens": 5}
    args = sweeps.check_compare("hi", None, [0.2, 0.8], 7, 3, 2, grid={"top_p": [0.5, 1.0]}, fixed=fixed)
    assert list(args.axes) == ["model", "temperature", "seed", "top_p"]
    assert args.axes == {"model": ["local/ngram"], "temperature": [0.2, 0.8], "seed": [7], "top_p": [0.5, 1.0]}
    assert (args.prompt, args.n, args.concurrency) == ("hi", 3, 2)
    assert args.call == {"system": "Be brief.", "headers": {"X-A": "1"}}
    assert args.params == {"max_tokens": 5}
    assert fixed["model"] == "local/ngram"  # the caller's dict is not changed


def test_check_compare_leaves_the_session_model_to_later():
    args = sweeps.check_compare("hi", fixed={"model": None})
    assert args.axes == {"model": [None]} and args.params == {} and args.call == {}
    messages = [{"role": "user", "content": "hi"}]
    assert sweeps.check_compare(messages, models=("a", "b")).axes["model"] == ["a", "b"]


COMPARE_ERRORS = [
    ({"prompt": ""}, "prompt", "", "a prompt string or a list of messages"),
    ({"prompt": b"hi"}, "prompt", b"hi", "a prompt string"),
    ({"n": 0}, "n", 0, "an integer of at least 1"),
    ({"n": True}, "n", True, "an integer of at least 1"),
    ({"concurrency": 65}, "concurrency", 65, "an integer from 1 to 64"),
    ({"concurrency": 2.0}, "concurrency", 2.0, "an integer from 1 to 64"),
    ({"models": ["a"], "fixed": {"model": "b"}}, "model", "b", "either model= or models="),
    ({"grid": [("top_p", [1])]}, "grid", [("top_p", [1])], "a dict of parameter name"),
    ({"grid": {"system": ["a", "b"]}}, "grid", "system", "request parameters only"),
    ({"grid": {"model": ["a", "b"]}}, "grid", "model", "request parameters only"),
    ({"seed": [1], "grid": {"seed": [2]}}, "grid", "seed", "each once"),
    ({"temperature": [0.1], "fixed": {"temperature": 0.5}}, "temperature", 0.5, "already swept"),
    ({"temperature": []}, "temperature", [], "at least one value"),
    ({"models": []}, "models", [], "at least one value"),
    ({"temperature": range(101), "seed": range(100)}, "compare", 10_100, "101 temperature x 100 seed x 1 n"),
]


@pytest.mark.parametrize(("kw", "param", "value", "allowed"), COMPARE_ERRORS, ids=[c[1] for c in COMPARE_ERRORS])
def test_check_compare_names_parameter_value_and_what_is_allowed(kw, param, value, allowed):
    kw = {"prompt": "hi", **kw}
    with pytest.raises(InvalidParameterError) as info:
        sweeps.check_compare(**kw)
    assert info.value.param == param and info.value.value == value
    assert allowed in info.value.message and param in info.value.message


def test_every_call_keyword_is_refused_as_a_grid_axis():
    for name in params.CHAT_KEYWORDS:
        with pytest.raises(InvalidParameterError, match="request parameters only") as info:
            sweeps.check_compare("hi", grid={name: [1, 2]})
        assert info.value.param == "grid" and info.value.value == name


# -- batch's arguments --------------------------------------------------------------------------------------
def test_check_batch_pairs_labels_with_prompts():
    args = sweeps.check_batch(["a", "b"], 2, 4, fixed={"base_url": "http://x/v1", "seed": 1, "model": "m"})
    assert args.pairs == [(0, "a"), (1, "b")] and not args.indexed and not args.by_item
    assert (args.n, args.concurrency) == (2, 4)
    assert args.call == {"base_url": "http://x/v1"} and args.params == {"seed": 1, "model": "m"}
    series = pd.Series({"q1": "a", "q2": "b"})
    assert sweeps.check_batch(series).by_item and not sweeps.check_batch(series, n=2).by_item
    frame = pd.DataFrame({"id": [1], "question": ["a"]}, index=[9])
    assert sweeps.check_batch(frame, column="question").pairs == [(9, "a")]
    assert sweeps.check_batch(p for p in ["a"]).pairs == [(0, "a")]


BATCH_ERRORS = [
    ({"prompts": "one"}, "prompts", "one", "a list, Series or DataFrame of prompts"),
    ({"prompts": []}, "prompts", [], "at least one prompt"),
    ({"prompts": ["a", ""]}, "prompts[1]", "", "a non-empty string or a list of messages"),
    ({"prompts": 5}, "prompts", 5, "a list, Series or DataFrame"),
    ({"n": -1}, "n", -1, "an integer of at least 1"),
    ({"concurrency": 0}, "concurrency", 0, "an integer from 1 to 64"),
    ({"prompts": pd.DataFrame({"a": ["x"], "b": ["y"]})}, "column", None, "name the prompt column"),
    ({"prompts": pd.DataFrame({"a": ["x"]}), "column": "b"}, "column", "b", "one of ['a']"),
    ({"prompts": ["a"] * 5001, "n": 2}, "batch", 10_002, "5,001 prompts x 2 n"),
]


@pytest.mark.parametrize(("kw", "param", "value", "allowed"), BATCH_ERRORS, ids=[c[1] for c in BATCH_ERRORS])
def test_check_batch_names_parameter_value_and_what_is_allowed(kw, param, value, allowed):
    kw = {"prompts": ["a"], **kw}
    with pytest.raises(InvalidParameterError) as info:
        sweeps.check_batch(**kw)
    assert info.value.param == param
    assert info.value.value is value or info.value.value == value
    assert allowed in info.value.message


# -- one run's row --------------------------------------------------------------------------------------------
def _response(*, finish: bool = True) -> Response:
    r = Response({"model": "local/ngram", "messages": [{"role": "user", "content": "q"}], "stream": True})
    r.feed({"choices": [{"index": 0, "delta": {"reasoning": "think", "content": "Hello"}}]})
    r.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    r.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    if finish:
        r.finish(complete=True)
    return r


def test_run_row_takes_the_response_columns_from_response_row():
    r = _response()
    row = sweeps.run_row(sweeps.Outcome(r, None, 99.0), (4, 17))
    assert tuple(row) == sweeps.RESULT_COLUMNS
    shared = response_row(r)
    for name in ("text", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens"):
        assert row[name] == shared[name]
    assert (row["text"], row["reasoning"], row["finish_reason"]) == ("Hello", "think", "stop")
    assert (row["prompt_tokens"], row["total_tokens"], row["reasoning_tokens"]) == (3, 5, None)
    assert row["latency_s"] == r.latency_s != 99.0 and row["ttft_s"] == r.ttft_s
    assert row["complete"] is True and row["error"] is None
    assert (row["diverge_token"], row["diverge_char"]) == (4, 17) and row["response"] is r


def test_run_row_of_a_failed_run():
    nothing = sweeps.run_row(sweeps.Outcome(None, ServerError("HTTP 500"), 1.5), (None, None))
    assert (nothing["text"], nothing["reasoning"]) == ("", "")
    assert nothing["latency_s"] == 1.5 and nothing["complete"] is False
    assert nothing["error"] == "ServerError: HTTP 500" and nothing["response"] is None
    assert all(nothing[c] is None for c in ("finish_reason", "prompt_tokens", "cost", "ttft_s", "diverge_token"))
    partial = _response(finish=False)  # a Response still open has no latency: the run's wall time stands in
    broken = sweeps.run_row(sweeps.Outcome(partial, StreamError("cut"), 2.5), (None, None))
    assert broken["text"] == "Hello" and broken["latency_s"] == 2.5 and broken["complete"] is False
    assert broken["error"] == "StreamError: cut" and broken["response"] is partial
    assert broken["prompt_tokens"] == 3


# -- the call keywords, declared once -----------------------------------------------------------------------
def test_compare_and_batch_pass_on_the_declared_keywords():
    assert set(params.CHAT_KEYWORDS) - {"model"} == sweeps.CALL_KEYWORDS
    everything = {name: object() for name in params.CHAT_KEYWORDS}
    compare = sweeps.check_compare("hi", fixed=everything)
    assert set(compare.call) == sweeps.CALL_KEYWORDS and compare.params == {}
    assert compare.axes["model"] == [everything["model"]]
    batch = sweeps.check_batch(["hi"], fixed=everything)
    assert set(batch.call) == sweeps.CALL_KEYWORDS and batch.params == {"model": everything["model"]}
