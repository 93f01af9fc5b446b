"""The catalog against the seed pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wcode_magic.core import catalog

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def seed_facts():
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        model_id = re.search(r"模型 ID\n(\S+)", text).group(1)
        context = int(re.search(r"上下文长度\n(\d+) K", text).group(1)) * 1000
        per = 1_000_000 if "每百万" in text else 1000
        price_in = float(re.search(r"输入\)\n¥ ([\d.]+)", text).group(1)) * 1000 / per
        price_out = float(re.search(r"输出\)\n¥ ([\d.]+)", text).group(1)) * 1000 / per
        yield model_id, context, price_in, price_out


@pytest.mark.parametrize("model_id,context,price_in,price_out", list(seed_facts()))
def test_catalog_matches_seed_pages(model_id, context, price_in, price_out):
    m = catalog.lookup(model_id)
    assert m is not None and m.id == model_id
    assert m.context == context
    assert m.price_in == pytest.approx(price_in) and m.price_out == pytest.approx(price_out)


def test_aliases_and_unknown_ids():
    assert catalog.resolve("r1") == "deepseek-r1"
    assert catalog.resolve("V3.1") == "deepseek/deepseek-chat-v3.1"
    assert catalog.resolve("qwen3-8b") == "qwen/qwen3-8b"
    assert catalog.resolve("r1-distill-32b") == "deepseek/deepseek-r1-distill-qwen-32b"
    assert catalog.resolve("r1-qwen3-8b") == "deepseek/deepseek-r1-0528-qwen3-8b"
    assert catalog.resolve("llama3.2:1b") == "llama3.2:1b"
    assert catalog.lookup("llama3.2:1b") is None


def test_models_frame():
    df = catalog.models()
    assert len(df) == len(catalog.MODELS)
    assert set(df["thinking"]) == {"always", "switchable", "never"}
    assert df.set_index("id").loc["deepseek-r1", "reasoning_field"] == "reasoning_content"


def test_cost_is_none_without_price_or_counts():
    m = catalog.lookup("qwen3")
    assert m.cost(1000, 1000) == pytest.approx(0.0005 + 0.00175)
    assert m.cost(None, 10) is None


def test_local_context_is_what_the_local_server_accepts():
    from wcode_magic import local
    from wcode_magic.local.chat import RequestError, parse_chat_request
    from wcode_magic.local.ngram import default_model

    assert {catalog.lookup(model_id).context for model_id in local.MODEL_IDS} == {local.CONTEXT_TOKENS}
    limit = catalog.lookup("local/ngram").context
    for model_id in local.MODEL_IDS:
        body = {"model": model_id, "messages": [{"role": "user", "content": "Tell me about the weather"}]}  # 5 tokens
        assert parse_chat_request({**body, "max_tokens": limit - 5}, default_model()).generation.max_tokens == limit - 5
        with pytest.raises(RequestError, match=f"{limit:,}"):
            parse_chat_request({**body, "max_tokens": limit - 4}, default_model())


def test_context_labels_read_as_the_model_pages_write_them():
    labels = {m.id: m.context_label for m in catalog.MODELS}
    assert labels["deepseek-r1"] == "64K" and labels["deepseek/deepseek-chat-v3.1"] == "128K"
    assert labels["local/ngram"] == "1M"
