"""Smoke tests against the real wcode.net API: one streamed call per seed model.

They run only when WCODE_API_KEY is set (conftest keeps the key away from every other test) and are skipped
otherwise, so the suite needs no network.
"""

from __future__ import annotations

import pytest
from conftest import REAL_WCODE_KEY

import wcode_magic as wm
from wcode_magic.core import catalog

pytestmark = [
    pytest.mark.wcode,
    pytest.mark.skipif(not REAL_WCODE_KEY, reason="WCODE_API_KEY is not set: no wcode.net smoke tests"),
]


@pytest.mark.parametrize("model", [m.id for m in catalog.SEED_MODELS])
def test_seed_model_streams_an_answer(model, session):
    r = wm.chat(
        "Reply with the single word: ok",
        model=model,
        base_url="https://wcode.net/api/gpt/v1",
        api_key=REAL_WCODE_KEY,
        max_tokens=400,
    )
    assert r.complete and r.text.strip()
    assert r.usage.prompt_tokens and r.usage.completion_tokens
    assert r.cost is not None and r.cost > 0
    if catalog.lookup(model).thinking == "always":
        assert r.reasoning or r.usage.reasoning_tokens
    assert REAL_WCODE_KEY not in repr(r) + repr(r.request) + repr(r.raw)
