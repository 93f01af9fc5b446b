"""Logprob DataFrames: byte fixtures for the provider shapes in protocol.md, then the local model's real logprobs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

import wcode_magic as wm
from wcode_magic.analysis import frames
from wcode_magic.core.errors import InvalidParameterError, WcodeWarning
from wcode_magic.core.response import Response

FIXTURES = Path(__file__).parent / "fixtures"


def alt(token: str, logprob: float | None, raw: bytes | None = None) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode() if raw is None else raw)}


def entry(token: str, logprob: float | None, alts: list[dict], raw: bytes | None = None) -> dict:
    return {**alt(token, logprob, raw), "top_logprobs": alts}


def respond(pieces: list[tuple[str, dict]], *, segment: str = "content", raw_text: bool = False, **request) -> Response:
    """A Response fed one chunk per (delta text, logprob entry), as a stream would, then finished."""
    req = {"model": "local/ngram", "messages": [{"role": "user", "content": "q"}], "logprobs": True, **request}
    r = Response(req)
    for text, e in pieces:
        delta = {"content": text} if segment == "content" else {"reasoning": text} if segment == "reasoning" else {}
        chunk = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "logprobs": {segment: [e]}}]}
        r.feed(chunk, json.dumps(chunk)) if raw_text else r.feed(chunk)
    r.finish(complete=True)
    return r


def no_warnings(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


NI = "你".encode()  # e4 bd a0: one character, two tokens
CJK = [
    ("", entry("\ufffd", -0.1, [alt("\ufffd", -0.1, NI[:2]), alt("\ufffd", -2.5, b"\xe6\x88")], raw=NI[:2])),
    ("你", entry("\ufffd", -0.01, [alt("\ufffd", -0.01, NI[2:])], raw=NI[2:])),
    ("好", entry("好", -0.2, [alt("好", -0.2), alt("们", -1.9)])),
]


@pytest.mark.parametrize("raw_text", [False, True], ids=["dicts", "chunk-text"])
def test_cjk_character_split_across_tokens(raw_text):
    r = respond(CJK, raw_text=raw_text, top_logprobs=2)
    df = no_warnings(r.tokens)
    assert r.text == "你好"
    assert df["text"].tolist() == ["", "你", "好"]
    assert df["char_start"].tolist() == [0, 0, 1] and df["char_end"].tolist() == [0, 1, 2]
    assert "".join(r.text[s:e] for s, e in zip(df.char_start, df.char_end, strict=True)) == r.text
    assert df["rank"].tolist() == [1.0, 1.0, 1.0]  # the U+FFFD twins are told apart by their bytes
    alts = r.alternatives()
    assert alts.groupby("position")["is_sampled"].sum().tolist() == [1, 1, 1]


def test_emoji_across_four_byte_tokens():
    robot = "🤖".encode()
    pieces = [("Hi ", entry("Hi ", -0.1, [alt("Hi ", -0.1)]))]
    pieces += [("🤖" if i == 3 else "", entry("\ufffd", -0.05, [], raw=robot[i : i + 1])) for i in range(4)]
    df = respond(pieces).tokens()
    assert df["text"].tolist() == ["Hi ", "", "", "", "🤖"]
    assert df["char_end"].tolist() == [3, 3, 3, 3, 4]


def test_sampled_token_missing_from_its_own_list():
    pieces = [(" cat", entry(" cat", -3.0, [alt(" dog", -0.5), alt(" bird", -1.5)]))]
    r = respond(pieces, top_logprobs=2)
    tok = r.tokens().iloc[0]
    assert math.isnan(tok["rank"]) and tok["top_token"] == " dog"
    assert tok["margin"] == pytest.approx(-2.5)
    assert tok["top_mass"] == pytest.approx(math.exp(-0.5) + math.exp(-1.5) + math.exp(-3.0))
    alts = r.alternatives()
    assert alts["token"].tolist() == [" dog", " bird", " cat"]
    assert alts["is_sampled"].tolist() == [False, False, True]
    assert math.isnan(alts["rank"].iloc[2])


def test_entropy_margin_and_rank_definitions():
    pieces = [("b", entry("b", math.log(0.3), [alt("a", math.log(0.6)), alt("b", math.log(0.3))]))]
    tok = respond(pieces).tokens().iloc[0]
    assert tok["rank"] == 2 and tok["top_token"] == "a"
    assert tok["margin"] == pytest.approx(math.log(0.3) - math.log(0.6))
    assert tok["entropy"] == pytest.approx(-(0.6 * math.log(0.6) + 0.3 * math.log(0.3)))
    assert tok["top_mass"] == pytest.approx(0.9)


def test_unsorted_lists_are_ranked_by_logprob():
    pieces = [("x", entry("x", -1.0, [alt("y", -2.0), alt("x", -1.0), alt("z", -0.1)]))]
    r = respond(pieces)
    assert r.tokens()["rank"].tolist() == [2.0]
    assert r.alternatives().set_index("token")["rank"].to_dict() == {"y": 3.0, "x": 2.0, "z": 1.0}


@pytest.mark.parametrize("sentinel", [-9999.0, None, -math.inf, -100.0, -1000.0])
def test_sentinels_become_minus_infinity(sentinel):
    pieces = [
        ("a", entry("a", -0.2, [alt("a", -0.2), alt("q", sentinel)])),
        ("b", entry("b", sentinel, [alt("c", -0.3)])),
    ]
    r = respond(pieces)
    df, alts = r.tokens(), r.alternatives()
    assert alts.loc[alts.token == "q", "logprob"].tolist() == [-math.inf]
    assert alts.loc[alts.token == "q", "prob"].tolist() == [0.0]
    assert df["logprob"].iloc[1] == -math.inf and df["prob"].iloc[1] == 0.0
    assert df["margin"].iloc[0] == math.inf  # the only rival is "outside the list"
    assert df["entropy"].notna().all()


@pytest.mark.parametrize("sentinel", [-9999.0, None, -100.0])
def test_chunk_text_and_dicts_give_the_same_frames(sentinel):
    pieces = [
        ("a", entry("a", -0.2, [alt("a", -0.2), alt("q", sentinel)])),
        ("b", entry("b", -3.0, [alt("c", -0.3), alt("d", -1.0)])),  # sampled token missing from its list
        *CJK,
        ("c", {"token": "c", "logprob": sentinel}),  # no bytes, no top_logprobs key at all
    ]
    as_dicts, as_text = respond(pieces, top_logprobs=2), respond(pieces, raw_text=True, top_logprobs=2)
    pd.testing.assert_frame_equal(as_dicts.tokens(), as_text.tokens())
    pd.testing.assert_frame_equal(as_dicts.alternatives(), as_text.alternatives())
    assert as_text.tokens()["text"].tolist() == ["a", "b", "", "你", "好", "c"]
    assert as_text.alternatives().groupby("position")["is_sampled"].sum().tolist() == [1] * 6


def test_malformed_entries_never_break_the_stream():
    pieces = [
        ("a", entry("a", "not a number", ["junk", alt("a", "x"), {"logprob": -1.0}])),  # type: ignore[list-item]
        ("b", {"token": "b", "logprob": -0.5, "bytes": [300], "top_logprobs": "junk"}),
    ]
    r = respond(pieces, raw_text=True)
    df = r.tokens()
    assert df["logprob"].tolist() == [-math.inf, -0.5]
    assert df["n_alternatives"].tolist() == [3, 0] and df["text"].tolist() == ["a", "b"]
    assert len(r.alternatives()) == 4  # 3 listed (the unreadable ones as unknown) + "b" added


def test_fewer_alternatives_than_asked():
    pieces = [
        ("a", entry("a", -0.1, [alt("a", -0.1), alt("b", -2.4)])),
        ("c", entry("c", -0.2, [])),
    ]
    r = respond(pieces, top_logprobs=5)
    df = r.tokens()
    assert df["n_alternatives"].tolist() == [2, 0]
    assert math.isnan(df["margin"].iloc[1]) and pd.isna(df["top_token"].iloc[1])
    assert len(r.alternatives()) == 3  # 2 listed + the sampled token added at position 1


def test_reasoning_segment_offsets_index_the_reasoning():
    pieces = [("Let", entry("Let", -0.1, [])), (" me", entry(" me", -0.2, []))]
    r = respond(pieces, segment="reasoning")
    df = r.tokens()
    assert set(df["segment"]) == {"reasoning"}
    assert r.reasoning[df.char_start[1] : df.char_end[1]] == " me"


def test_refusal_segment():
    pieces = [("", entry("I can't", -0.3, [alt("I can't", -0.3), alt("Sure", -1.6)]))]
    r = respond(pieces, segment="refusal")
    df = r.tokens()
    assert df["segment"].tolist() == ["refusal"] and df["text"].tolist() == ["I can't"]
    assert df["rank"].tolist() == [1.0]
    with pytest.warns(WcodeWarning, match="no logprobs for the answer"):
        assert frames.tokens(r, segment="answer").empty


def test_segment_name_is_checked():
    r = respond(CJK)
    with pytest.raises(InvalidParameterError, match=r"segment='content'.*'answer'"):
        frames.tokens(r, segment="content")


def assert_one_warning_and_empty(fn, r, match):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = fn(r)
    ours = [w for w in caught if issubclass(w.category, WcodeWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert match in str(ours[0].message)
    assert ours[0].filename == __file__, "the warning points at the user's line, not into the package"
    assert df.empty and match in df.attrs["reason"]
    return df


@pytest.mark.parametrize("fn", [frames.tokens, frames.alternatives])
def test_logprobs_null_gives_an_empty_frame_and_one_warning(fn):
    r = Response({"model": "m", "logprobs": True, "top_logprobs": 5})
    r.feed({"choices": [{"index": 0, "delta": {"content": "4"}, "logprobs": None}]})
    r.finish(complete=True)
    df = assert_one_warning_and_empty(fn, r, "logprobs: null")
    assert list(df.columns) == list(frames.TOKEN_COLUMNS if fn is frames.tokens else frames.ALTERNATIVE_COLUMNS)


def test_empty_lists_from_openrouter_seed_give_an_empty_frame_and_one_warning():
    body = json.loads((FIXTURES / "seed_r1_qwen3_8b.json").read_text())
    assert body["choices"][0]["logprobs"] == {"content": [], "refusal": []}
    r = Response({"model": body["model"], "logprobs": True, "top_logprobs": 5})
    r.feed(body)
    r.finish(complete=True)
    assert_one_warning_and_empty(frames.tokens, r, "empty lists")
    assert_one_warning_and_empty(lambda x: frames.label_probs(x, ["Yes"]), r, "empty lists")


def test_logprobs_not_requested():
    r = Response({"model": "m"})
    r.feed({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    r.finish(complete=True)
    assert_one_warning_and_empty(frames.alternatives, r, "not requested")


def test_frame_one_row_per_response_with_params_spread():
    a = respond(CJK, temperature=0.2, seed=1)
    b = respond(CJK[2:], temperature=0.9, seed=2, stop=["\n"])
    df = frames.frame([a, None, b])
    assert len(df) == 2
    assert df["temperature"].tolist() == [0.2, 0.9] and df["seed"].tolist() == [1, 2]
    assert "stop" not in df.columns and df["params"].iloc[1]["stop"] == ["\n"]
    from wcode_magic.analysis.rows import COLUMNS

    assert set(COLUMNS) <= set(df.columns)
    assert df["min_prob"].iloc[1] == pytest.approx(math.exp(-0.2))
    with pytest.raises(InvalidParameterError, match="responses"):
        frames.frame(["not a response"])


def test_label_probs_pools_case_and_leading_space():
    first = [alt("\n", -0.01)]
    yes_no = [alt("Yes", math.log(0.5)), alt(" yes", math.log(0.1)), alt("No", math.log(0.2)), alt("maybe", -3.0)]
    r = respond([("\n", entry("\n", -0.01, first)), ("Yes", entry("Yes", math.log(0.5), yes_no))])
    df = frames.label_probs(r, ["yes", "No"])
    assert df.attrs["position"] == 1  # the leading newline is skipped
    probs = df.set_index("label")["prob"]
    assert probs["yes"] == pytest.approx(0.6) and probs["No"] == pytest.approx(0.2)
    assert probs["(other listed)"] == pytest.approx(math.exp(-3.0))
    assert df["prob"].sum() == pytest.approx(1.0)
    assert df.set_index("label")["share"]["yes"] == pytest.approx(0.75)
    assert sorted(df.set_index("label")["tokens"]["yes"]) == [" yes", "Yes"]
    with pytest.raises(InvalidParameterError, match="labels"):
        frames.label_probs(r, ["Yes", " yes"])
    with pytest.raises(InvalidParameterError, match="position=9"):
        frames.label_probs(r, ["Yes"], position=9)


def test_check_labels_gives_the_pooling_keys_and_names_what_is_wrong():
    assert frames.check_labels(("Yes", " no ")) == (["Yes", " no "], ["yes", "no"])
    for bad in ([], ["Yes", "  "], ["Yes", 1], ["Yes", "YES "]):
        with pytest.raises(InvalidParameterError) as info:
            frames.check_labels(bad)
        assert info.value.param == "labels" and info.value.value == list(bad)


def test_choose_position_skips_blank_tokens_and_checks_the_range():
    blank = [alt(" ", -0.1)]
    r = respond([(" ", entry(" ", -0.1, blank)), ("\n", entry("\n", -0.1, blank)), ("A", entry("A", -0.1, []))])
    cols = r.logprob_columns("content")
    assert frames.choose_position(cols, None) == 2
    assert frames.choose_position(cols, 0) == 0
    only_blank = respond([(" ", entry(" ", -0.1, blank))]).logprob_columns("content")
    assert frames.choose_position(only_blank, None) == 0
    with pytest.raises(InvalidParameterError, match=r"position=3 .* 3 tokens \(0\.\.2\)") as info:
        frames.choose_position(cols, 3)
    assert info.value.param == "position" and info.value.value == 3
    with pytest.raises(InvalidParameterError, match="position=-1"):
        frames.choose_position(cols, -1)


def test_known_at_reads_one_position_and_adds_a_missing_sampled_token():
    r = respond(
        [
            ("a", entry("a", -0.5, [alt("a", -0.5), alt("b", -1.0)])),
            ("c", entry("c", -4.0, [alt("d", -0.2), alt("e", -2.0)])),  # the sampled token is not listed
        ]
    )
    cols = r.logprob_columns("content")
    assert frames.known_at(cols, 0) == ("a", [("a", -0.5), ("b", -1.0)])
    assert frames.known_at(cols, 1) == ("c", [("d", -0.2), ("e", -2.0), ("c", -4.0)])


def test_pool_labels_matches_whole_labels_or_one_label_by_prefix():
    keys = ["positive", "negative", "neutral"]
    known = [("Positive", math.log(0.4)), (" positive", math.log(0.1)), ("Neg", math.log(0.2)), ("Ne", math.log(0.1))]
    known += [(None, math.log(0.05)), ("x", math.log(0.05))]
    exact = frames.pool_labels(known, keys, prefix=False)
    assert exact.mass == pytest.approx([0.5, 0.0, 0.0]) and exact.tokens == [["Positive", " positive"], [], []]
    assert exact.other == pytest.approx(0.4) and exact.listed == pytest.approx(0.9)
    by_prefix = frames.pool_labels(known, keys, prefix=True)  # "Ne" starts two labels: it counts for neither
    assert by_prefix.mass == pytest.approx([0.5, 0.2, 0.0]) and by_prefix.tokens[1] == ["Neg"]
    assert by_prefix.other == pytest.approx(0.2)
    assert frames.pool_labels([("neutral", 0.0)], keys, prefix=True).mass == [0.0, 0.0, 1.0]


def test_label_frame_rows_sum_to_one_and_shares_are_among_the_labels():
    df = frames.label_frame(["a", "b"], frames.LabelMass([0.3, 0.0], [["A"], []], other=0.2, listed=0.5))
    assert df["label"].tolist() == ["a", "b", "(other listed)", "(not listed)"]
    assert df["prob"].tolist() == pytest.approx([0.3, 0.0, 0.2, 0.5]) and df["prob"].sum() == pytest.approx(1.0)
    assert df["logprob"].iloc[0] == pytest.approx(math.log(0.3)) and df["logprob"].iloc[1] == -math.inf
    assert df["share"].iloc[:2].tolist() == [1.0, 0.0] and df["share"].iloc[2:].isna().all()
    assert df["tokens"].tolist() == [["A"], [], [], []]
    rounding = frames.label_frame(["a"], frames.LabelMass([1.0], [["a"]], listed=1.0 + 1e-12))
    assert rounding["prob"].iloc[-1] == 0.0  # never a negative "not listed"
    assert frames.label_frame(["a"], frames.LabelMass([0.0], [[]], other=1.0, listed=1.0))["share"].isna().all()


# -- the local model's real logprobs ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_response(local_url):
    return wm.chat(
        "Tell me about the sea and the ships",
        model="local/ngram",
        base_url=local_url,
        logprobs=True,
        top_logprobs=5,
        seed=1,
        max_tokens=80,
    )


def test_local_probabilities_ranks_entropy_and_offsets(local_response):
    r = local_response
    df, alts = no_warnings(r.tokens), no_warnings(r.alternatives)
    assert len(df) == len(r.logprobs) > 10
    assert (df["top_mass"] <= 1 + 1e-9).all() and (df["top_mass"] > 0).all()
    assert (alts.groupby("position")["prob"].sum() <= 1 + 1e-9).all()
    assert (df["n_alternatives"] == 5).all()
    # the sampled token's rank is its place among the listed alternatives, best first
    for _, row in df[df["rank"].notna()].head(20).iterrows():
        listed = alts[(alts.position == row.position) & alts["rank"].notna()].sort_values("rank")
        assert listed["token"].iloc[int(row["rank"]) - 1] == row.token
    assert (df.loc[df["rank"] == 1, "margin"] >= 0).all()
    assert "".join(r.text[s:e] for s, e in zip(df.char_start, df.char_end, strict=True)) == r.text
    assert "".join(df["text"]) == r.text


def test_local_entropy_is_a_lower_bound_that_grows_with_more_alternatives(local_url, local_response):
    wide = wm.chat(
        local_response.request["messages"],
        model="local/ngram",
        base_url=local_url,
        logprobs=True,
        top_logprobs=20,
        seed=1,
        max_tokens=80,
    )
    narrow, full = local_response.tokens(), wide.tokens()
    assert narrow["token"].tolist() == full["token"].tolist()  # same seed, same tokens
    assert (full["n_alternatives"] > narrow["n_alternatives"]).all()
    assert (narrow["entropy"] <= full["entropy"] + 1e-9).all()
    assert (narrow["entropy"] < full["entropy"] - 1e-6).any()
    assert (narrow["top_mass"] <= full["top_mass"] + 1e-9).all() and (full["top_mass"] <= 1 + 1e-9).all()


def test_local_label_probs_sums_to_one(local_response):
    first = local_response.logprobs[0]["top_logprobs"]
    labels = [first[0]["token"].strip() or "x", "zebra"]
    df = frames.label_probs(local_response, labels, position=0)
    assert df["prob"].sum() == pytest.approx(1.0)
    assert df["prob"].iloc[0] >= math.exp(first[0]["logprob"]) - 1e-12


def test_an_answer_lost_to_thinking_says_so(local_url):
    """All of max_tokens spent on thinking: the reason is the budget, not a provider ignoring logprobs."""
    r = wm.chat("Why is the sky blue?", model="local/ngram-thinking", base_url=local_url, max_tokens=5, logprobs=True)
    assert r.text == "" and r.finish_reason == "length"
    df = assert_one_warning_and_empty(frames.tokens, r, "went to the thinking")
    assert "max_tokens=5" in df.attrs["reason"]


@pytest.mark.parametrize(
    ("sent", "finite"),
    [
        ([-0.2, -0.4, -1.0], [-0.2, -0.4, -1.0]),  # plain floats: taken as they are
        ([-0.2, -9999.0, None, -0.4, float("nan"), -100.0], [-0.2, -0.4]),  # every sentinel left out
        ([-0.2, -9999.0, -0.4, -math.inf, math.inf], [-0.2, -0.4]),  # all floats, some of them sentinels
        ([-0.2, "-0.4", 0], [-0.2, -0.4, 0.0]),  # numbers sent as text or ints still count
        ([None, -9999.0], []),
    ],
)
def test_history_summary_counts_only_known_logprobs(sent, finite):
    from wcode_magic.analysis.rows import logprob_summary

    r = respond([(f"t{i}", entry(f"t{i}", lp, [])) for i, lp in enumerate(sent)], raw_text=True)
    mean, perplexity, min_prob = logprob_summary(r)
    if not finite:
        assert (mean, perplexity, min_prob) == (None, None, None)
        return
    assert mean == pytest.approx(sum(finite) / len(finite))
    assert perplexity == pytest.approx(math.exp(-mean)) and min_prob == pytest.approx(math.exp(min(finite)))
