"""schema= on wm.batch / wm.compare against the local model: a column per top-level field, <field>_prob with
logprobs, parse failures as rows with their error, bad schemas refused before anything is sent."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import pytest

import wcode_magic as wm


@dataclass
class Verdict:
    label: Literal["positive", "negative", "mixed"]
    reason: str


REVIEWS = pd.Series(
    ["The food was great and the staff kind.", "Cold soup, rude waiter.", "Nice view, slow service."],
    index=["r1", "r2", "r3"],
)


def test_a_column_of_texts_becomes_typed_columns_with_probabilities(local_url):
    df = wm.batch(
        REVIEWS, schema=Verdict, base_url=local_url, model="local/ngram", logprobs=True, top_logprobs=5, progress=False
    )
    assert list(df.index) == ["r1", "r2", "r3"]
    assert set(df["label"]) <= {"positive", "negative", "mixed"} and df["error"].isna().all()
    assert df["reason"].map(lambda v: isinstance(v, str)).all()
    assert df["label_prob"].between(0, 1).all() and df["reason_prob"].between(0, 1).all()
    assert all(isinstance(v, Verdict) for v in df["parsed"])
    for _, row in df.iterrows():  # the column is the field's probability from field_probs
        fp = row["response"].field_probs().set_index("path")
        assert math.isclose(row["label_prob"], fp.loc["label", "prob"])
    cols = list(df.columns)
    assert cols.index("label") < cols.index("label_prob") < cols.index("text") < cols.index("parsed")


def test_without_logprobs_no_prob_columns_and_async_too(local_url):
    df = asyncio.run(
        wm.abatch(
            ["one", "two"], schema="label: yes|no, text: str", base_url=local_url, model="local/ngram", progress=False
        )
    )
    assert "label_prob" not in df.columns and set(df["label"]) <= {"yes", "no"}
    assert df["text_field"].map(lambda v: isinstance(v, str)).all()  # the field named like the answer's column
    assert df["text"].str.startswith("{").all()


def test_a_parse_failure_is_a_row_with_its_error(local_url):
    df = wm.compare(
        "Is it good?", grid={"max_tokens": [4, 200]}, schema="label: yes|no", base_url=local_url, model="local/ngram",
        logprobs=True, progress=False,
    )  # fmt: skip
    cut, whole = df.iloc[0], df.iloc[1]
    assert cut["error"].startswith("SchemaError: ") and "not valid JSON" in cut["error"]
    assert pd.isna(cut["label"]) and math.isnan(cut["label_prob"]) and pd.isna(cut["parsed"])
    assert cut["text"].startswith('{"label": ')  # the text is kept
    assert pd.isna(whole["error"]) and whole["label"] in ("yes", "no") and 0 < whole["label_prob"] <= 1


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"schema": "label: maybe"}, "unknown type"),
        ({"schema": "a: str", "response_format": {"type": "json_object"}}, "not both"),
    ],
)
def test_bad_schemas_fail_before_sending(counted_local, kw, named):
    before = counted_local.count
    with pytest.raises(wm.InvalidParameterError, match=named):
        wm.batch(["a", "b"], base_url=counted_local.base_url, model="local/ngram", progress=False, **kw)
    with pytest.raises(wm.InvalidParameterError, match=named):
        wm.compare("a", temperature=[0, 1], base_url=counted_local.base_url, progress=False, **kw)
    assert counted_local.count == before
