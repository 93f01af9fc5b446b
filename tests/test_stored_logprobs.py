"""History's logprob format: the Response's columns written as they are and read back as the same entries."""

from __future__ import annotations

import json
import math

from test_frames import CJK, alt, entry, respond

import wcode_magic as wm
from wcode_magic.analysis import stored_logprobs


def without_plain_alt_bytes(entries: list[dict]) -> list[dict]:
    """What the stored form promises: everything, except alternatives' bytes where the token strings say it all."""
    out = []
    for e in entries:
        ambiguous = any("\ufffd" in (t["token"] or "") for t in (e, *e["top_logprobs"]))
        alts = [{**a, "bytes": a["bytes"] if ambiguous else None} for a in e["top_logprobs"]]
        out.append({**e, "top_logprobs": alts})
    return out


def round_trip(r) -> list[dict] | None:
    return stored_logprobs.loads(stored_logprobs.dumps(r.logprob_columns("content")))


def test_cjk_split_keeps_the_bytes_that_tell_tokens_apart():
    r = respond(CJK, top_logprobs=2)
    back = round_trip(r)
    assert back == without_plain_alt_bytes(r.logprobs)
    assert back[0]["bytes"] == list("你".encode()[:2]) and back[0]["top_logprobs"][1]["bytes"] == [0xE6, 0x88]


def test_every_sentinel_reads_back_as_minus_infinity():
    sentinels = [-9999.0, None, float("nan"), float("-inf"), -1000.0, -100.0]
    pieces = [(f"t{i}", entry(f"t{i}", v, [alt("x", v), alt("y", -0.5)])) for i, v in enumerate(sentinels)]
    back = round_trip(respond(pieces, top_logprobs=2))
    assert [e["logprob"] for e in back] == [-math.inf] * len(sentinels)
    assert [e["top_logprobs"][0]["logprob"] for e in back] == [-math.inf] * len(sentinels)
    assert [e["top_logprobs"][1]["logprob"] for e in back] == [-0.5] * len(sentinels)


def test_lone_surrogate_token_is_stored_too():
    pieces = [("a", entry("\udce2", -0.3, [alt("\udce2", -0.3, b"\xe2")], raw=b"\xe2"))]
    back = round_trip(respond(pieces, top_logprobs=1))
    assert back[0]["token"] == "\udce2" and back[0]["bytes"] == [0xE2]


def test_fewer_alternatives_than_asked_and_none_at_all():
    pieces = [("a", entry("a", -0.1, [alt("a", -0.1)])), ("b", entry("b", -0.2, [])), ("c", entry("c", -0.3, []))]
    r = respond(pieces, top_logprobs=5)
    assert round_trip(r) == without_plain_alt_bytes(r.logprobs)


def test_no_logprobs_stores_nothing_and_old_rows_read_as_stored():
    assert stored_logprobs.dumps(None) is None and stored_logprobs.loads(None) is None
    old = [{"token": "Hi", "logprob": -0.5, "bytes": None, "top_logprobs": []}]
    assert stored_logprobs.loads(json.dumps(old)) == old


def test_history_row_has_the_local_models_real_logprobs(local_url, session, tmp_path, monkeypatch):
    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WCODE_HISTORY", raising=False)
    r = wm.chat(
        "the river", model="local/ngram", base_url=local_url, max_tokens=40, seed=3, logprobs=True, top_logprobs=5
    )
    assert len(r.logprobs) == r.usage.completion_tokens
    stored = wm.history(1).iloc[0]["logprobs"]
    assert stored == without_plain_alt_bytes(r.logprobs)


def test_an_ambiguous_alternative_keeps_its_bytes_beside_a_plain_sampled_token():
    pieces = [("好", entry("好", -0.2, [alt("好", -0.2), alt("\ufffd", -1.9, b"\xe6\x88")]))]
    back = round_trip(respond(pieces, top_logprobs=2))
    assert back[0]["top_logprobs"][1]["bytes"] == [0xE6, 0x88]
