"""A key never reaches a prompt through a placeholder, nor anything kept of an exchange (issue 17, item 4).

A ``{placeholder}`` whose value holds a key the session knows is refused by name before anything is sent; a key in
what is stored (the request as history keeps it, an answer that echoes the key whole, in pieces across chunks, or
cut off) is masked in the Response itself, so ``wm.last()``, the history and the notebook's output agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import types

import pandas as pd
import pytest
from wire import TRANSPORT, ask

import wcode_magic as wm
from wcode_magic.core.errors import InvalidParameterError, WcodeWarning
from wcode_magic.core.keys import Secret
from wcode_magic.notebook import run
from wcode_magic.notebook.interpolate import interpolate

KEY = "sk-test-SECRET-abcdefghij0123456789"
STORED = "sk-test-STORED-zyxwvutsrq9876543210"


class Config:
    def __init__(self, key: str) -> None:
        self.api_key = key
        self.name = "cfg"


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("Explain {env}", "{env}"),
        ("Explain {env!r}", "{env!r}"),
        ("Explain {env!s:>10}", "{env!s:>10}"),
        ("Use {cfg.api_key} please", "{cfg.api_key}"),
        ('{"settings": {cfg.api_key}}', "{cfg.api_key}"),
        ("Prefix {short}", "{short}"),  # the first 12 characters are still the key's
        ("ok {name} then {env}", "{env}"),
    ],
)
def test_a_placeholder_holding_the_key_is_refused_by_name(text, placeholder):
    ns = {"env": {"WCODE_API_KEY": KEY, "HOME": "/root"}, "cfg": Config(KEY), "short": KEY[:12], "name": "x"}
    with pytest.raises(InvalidParameterError) as caught:
        interpolate(text, ns, [Secret(KEY)])
    e = caught.value
    assert e.param == "prompt" and e.value == placeholder and placeholder in e.message
    assert KEY[:8] not in e.message and "--no-interpolate" in e.message


def test_other_values_and_short_placeholder_keys_are_filled():
    ns = {"cfg": Config(KEY), "n": 3}
    assert interpolate("{cfg.name} {n}", ns, [Secret(KEY)]) == "cfg 3"
    assert interpolate("{cfg.api_key}", ns) == KEY  # no key known: nothing to protect
    assert interpolate("{k}", {"k": "EMPTY"}, [Secret("EMPTY")]) == "EMPTY"  # a placeholder key, not a secret


def test_a_magic_prompt_with_os_environ_is_refused_before_sending(replay, session, monkeypatch):
    monkeypatch.setenv("WCODE_API_KEY", STORED)
    wm.configure(base_url=replay.base_url, api_key=KEY)
    shell = types.SimpleNamespace(user_ns={"os": os, "cfg": Config(KEY)})
    sent = len(replay.requests)
    for cell, placeholder in (("Explain {os.environ}", "{os.environ}"), ("{cfg.api_key}", "{cfg.api_key}")):
        with pytest.raises(run.CellError) as caught:
            run.cell_sync(shell, "wcode", "", cell)
        assert placeholder in caught.value.message
        assert STORED[:8] not in caught.value.message and KEY[:8] not in caught.value.message
    assert len(replay.requests) == sent


def _kept(r) -> list[str]:
    """Everything a Response keeps or shows, and the history's copy."""
    return [
        r.text,
        r.reasoning,
        json.dumps(r.raw),
        json.dumps(r.request),
        json.dumps(r.message),
        repr(r),
        r._repr_markdown_(),
        repr(wm.last()),
        wm.last().text,
        wm.history().astype(str).to_csv(),
    ]


def test_a_key_the_server_echoes_in_pieces_is_masked_before_it_is_kept(replay, session, transport):
    r = ask(replay, "echo-key-stream", api_key=KEY)
    assert r.complete and wm.last() is r
    for text in _kept(r):
        assert KEY[:8] not in text
    masked = Secret(KEY).masked()
    assert r.text == f"Your key: {masked} and again {masked}"
    assert r.reasoning == f"The key is {masked}." and r.reasoning_details[0]["text"] == masked


def test_logprobs_of_an_echoed_key_are_dropped_with_the_reason(replay, session, transport):
    with pytest.warns(WcodeWarning, match="repeated an API key, so its token logprobs were dropped"):
        r = ask(replay, "echo-key-stream", api_key=KEY, logprobs=True, top_logprobs=2)
    assert replay.requests[-1]["top_logprobs"] == 2  # asked for, and the server sent them (wire.echo_key_stream)
    assert r.complete and r.logprobs == [] and r.logprob_segments == () and r.logprobs_status == "withheld"
    with pytest.warns(WcodeWarning, match="repeated an API key") as caught:
        assert r.tokens().empty and r.alternatives().empty
    third = len(KEY) // 3
    pieces = [KEY[:third], KEY[third : 2 * third], KEY[2 * third :]]
    row = wm.history(1).iloc[-1]
    assert row["logprobs"] is None and pd.isna(row["mean_logprob"])
    kept = [*_kept(r), json.dumps(r.logprobs), str(caught[0].message)]
    for text in kept:
        for piece in pieces:
            assert piece not in text


def test_logprobs_without_a_key_in_them_are_kept(replay, session, transport):
    r = ask(replay, "echo-key-stream", api_key="EMPTY", logprobs=True, top_logprobs=2)  # a placeholder, no secret
    assert r.logprobs_status == "sent" and [e["token"] for e in r.logprobs][:2] == ["Your key: ", "E"]
    assert len(r.tokens()) == 6 and len(r.alternatives()) == 12


def test_a_key_typed_in_the_prompt_is_sent_but_not_kept(replay, session, monkeypatch, transport):
    monkeypatch.setenv("WCODE_API_KEY", STORED)  # known to the session though not sent to this server
    prompt = f"is {KEY} or {STORED} valid?"
    kw = {"base_url": replay.base_url, "headers": {"X-Replay": "ark_r1"}, "api_key": KEY}
    r = wm.chat(prompt, **kw) if TRANSPORT[0] == "sync" else asyncio.run(wm.achat(prompt, **kw))
    assert replay.requests[-1]["messages"][-1]["content"] == prompt  # what the user wrote went out as written
    for text in _kept(r):
        assert KEY[:8] not in text and STORED[:8] not in text
