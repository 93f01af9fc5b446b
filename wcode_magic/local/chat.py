"""Parsing and validation of a chat completion request body for the local server (pure, no I/O).

The client validates parameters too, but the server must be honest on its own: anything out of the documented
range (the seed pages' 可选参数) is a 400 naming the parameter, never silently clamped.

``max_tokens`` bounds the whole completion, reasoning included, as on OpenRouter, OpenAI and DeepSeek: reasoning
also has its own budget (``reasoning.max_tokens``, ``effort``, or medium), and stops at whichever comes first; the
answer gets the rest. So a small ``max_tokens`` on a thinking model can leave an empty answer with
``finish_reason: "length"``, as real reasoning models do: raise ``max_tokens`` or lower the effort. Unknown fields
are ignored, as OpenRouter does.

The context length is :data:`~wcode_magic.local.CONTEXT_TOKENS` (the catalog says the same): prompt tokens plus
``max_tokens`` above it is a 400 naming ``max_tokens`` and the limit, as real servers answer. Without
``max_tokens`` the completion may use the rest of the context, but at most :data:`DEFAULT_MAX_TOKENS`. The trigram
model itself only looks at the last two words, so the limit is what the server accepts, not what the model uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import CONTEXT_TOKENS, MAX_STOP_STRINGS, MAX_TOP_LOGPROBS
from .generate import GenerationRequest
from .jsonmode import JsonPlan, Unsupported, plan
from .ngram import NgramModel, count_tokens
from .sampling import SamplingParams

# Model id -> the delta field carrying reasoning (None: the model never thinks).
MODELS: dict[str, str | None] = {
    "local/ngram": None,
    "local/ngram-thinking": "reasoning",
    "local/ngram-thinking-rc": "reasoning_content",
}
EFFORT_BUDGETS = {"low": 16, "medium": 48, "high": 128}
DEFAULT_MAX_TOKENS = 256  # without max_tokens: the rest of the context, at most this

# name -> (low, high, integer, default) for the plain numeric sampling parameters.
_RANGES: dict[str, tuple[float, float, bool, float]] = {
    "temperature": (0.0, 2.0, False, 1.0),
    "top_p": (0.0, 1.0, False, 1.0),
    "top_k": (0, math.inf, True, 0),
    "min_p": (0.0, 1.0, False, 0.0),
    "top_a": (0.0, 1.0, False, 0.0),
    "frequency_penalty": (-2.0, 2.0, False, 0.0),
    "presence_penalty": (-2.0, 2.0, False, 0.0),
    "repetition_penalty": (0.0, 2.0, False, 1.0),
}


class RequestError(ValueError):
    """A request the server refuses: HTTP status, message and the offending parameter."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code  # OpenAI's error code, when it has a name (else the status)

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error body."""
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error" if self.status < 500 else "server_error",
                "param": self.param,
                "code": self.code or self.status,
            }
        }


@dataclass(frozen=True)
class ChatRequest:
    """A validated request: what to generate and how to send it."""

    model: str
    reasoning_field: str | None
    generation: GenerationRequest
    stream: bool
    include_usage: bool
    logprobs: bool
    show_reasoning: bool
    prompt_tokens: int
    json_plan: JsonPlan | None = None  # response_format json_schema / json_object: the answer is JSON (jsonmode)


def parse_chat_request(body: Any, model: NgramModel) -> ChatRequest:
    """Validate a decoded JSON body; raise :class:`RequestError` (400, or 404 for an unknown model)."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model_id = body.get("model")
    if model_id not in MODELS:
        raise RequestError(
            f"model {model_id!r} is not served here; the local models are {', '.join(MODELS)}", "model", 404
        )
    messages = _messages(body.get("messages"))
    if body.get("n") not in (None, 1):
        raise RequestError("the local model answers with one choice: n must be 1", "n")
    logprobs = _boolean(body, "logprobs", False)
    top_logprobs = int(_number(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, True, 0))
    if top_logprobs and not logprobs:
        raise RequestError("top_logprobs requires logprobs: true", "top_logprobs")
    budget = _reasoning_budget(body) if MODELS[model_id] else 0
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("stream_options must be an object", "stream_options")
    prompt = _prompt(messages)
    prefill = _prefill(messages)
    prompt_tokens = sum(count_tokens(message_text(m.get("content"))) for m in messages)
    generation = GenerationRequest(
        prompt=prompt,
        params=_sampling_params(body, model),
        max_tokens=_max_tokens(body, prompt_tokens),
        stop=_stop(body.get("stop")),
        ignore_eos=_boolean(body, "ignore_eos", False),
        seed=_seed(body.get("seed")),
        reasoning_budget=0 if prefill else budget,
        top_logprobs=top_logprobs if logprobs else None,
        prefill=prefill,
    )
    return ChatRequest(
        model=model_id,
        reasoning_field=MODELS[model_id],
        generation=generation,
        stream=_boolean(body, "stream", False),
        include_usage=bool(stream_options.get("include_usage", False)),
        logprobs=logprobs,
        show_reasoning=not _reasoning_excluded(body),
        prompt_tokens=prompt_tokens,
        json_plan=_json_plan(body.get("response_format")),
    )


def _json_plan(response_format: Any) -> JsonPlan | None:
    """How to answer in JSON (None: text); a format or schema the local model cannot honour is a 400 naming it."""
    try:
        return plan(response_format)
    except Unsupported as error:
        raise RequestError(f"response_format: {error}", "response_format", code="unsupported_schema") from None


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects", "messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("each message must be an object with a string role", "messages")
        if not isinstance(message.get("content"), (str, list, type(None))):
            raise RequestError("message content must be a string, a list of parts or null", "messages")
    return messages


def message_text(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a list (images and the like are ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _prompt(messages: list[dict[str, Any]]) -> str:
    """The text the answer continues from: the last user message (or the last message if none is a user's).

    A trailing assistant message (a prefill) is not the prompt: the answer continues it (:func:`_prefill`)."""
    users = [m for m in messages if m.get("role") == "user"]
    return message_text((users or messages)[-1].get("content"))


def _prefill(messages: list[dict[str, Any]]) -> str:
    """A trailing assistant message's text: the answer begun, which the answer continues exactly ("" if none)."""
    if len(messages) > 1 and messages[-1].get("role") == "assistant":
        return message_text(messages[-1].get("content"))
    return ""


def drop_prefill(body: dict[str, Any]) -> dict[str, Any]:
    """The body without its trailing assistant message: what a server that ignores a prefill answers
    (the ``ignore_prefill`` fault)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return body
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        return {**body, "messages": messages[:-1]}
    return body


def _number(body: dict[str, Any], name: str, low: float, high: float, integer: bool, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise RequestError(f"{name} must be {kind}, not {value!r}", name)
    if not low <= value <= high:
        bounds = f">= {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise RequestError(f"{name} must be {bounds}, not {value!r}", name)
    return value


def _boolean(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, not {value!r}", name)
    return value


def _sampling_params(body: dict[str, Any], model: NgramModel) -> SamplingParams:
    values = {name: _number(body, name, *spec) for name, spec in _RANGES.items()}
    values["top_k"] = int(values["top_k"])
    return SamplingParams(**values, logit_bias=_logit_bias(body.get("logit_bias"), model))  # type: ignore[arg-type]


def _logit_bias(bias: Any, model: NgramModel) -> tuple[tuple[int, float], ...]:
    """OpenAI semantics (token id string -> -100..100); a token's text is accepted as key for convenience."""
    if bias is None:
        return ()
    if not isinstance(bias, dict):
        raise RequestError("logit_bias must be an object mapping token ids to biases", "logit_bias")
    resolved: dict[int, float] = {}
    for key, value in bias.items():
        token_id = _token_id(str(key), model)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise RequestError(f"logit_bias[{key!r}] must be a number between -100 and 100", "logit_bias")
        resolved[token_id] = float(value)
    return tuple(sorted(resolved.items()))


def _token_id(key: str, model: NgramModel) -> int:
    if key.lstrip("-").isdigit():
        token_id = int(key)
        if 0 <= token_id < model.size:
            return token_id
        raise RequestError(
            f"logit_bias token id {token_id} is outside the vocabulary (0..{model.size - 1})", "logit_bias"
        )
    if key in model.index:
        return model.index[key]
    raise RequestError(f"logit_bias key {key!r} is neither a token id nor a token of the local model", "logit_bias")


def _max_tokens(body: dict[str, Any], prompt_tokens: int) -> int:
    """The completion's limit: as asked if prompt + max_tokens fits the context, else a 400; absent, the default."""
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    asked = body.get(name) is not None
    max_tokens = int(_number(body, name, 1, math.inf, True, DEFAULT_MAX_TOKENS))
    room = CONTEXT_TOKENS - prompt_tokens
    if room < 1:
        raise RequestError(
            f"This model's maximum context length is {CONTEXT_TOKENS:,} tokens, and the messages alone are "
            f"{prompt_tokens:,} tokens, leaving none for the completion. Shorten the messages.",
            "messages",
            code="context_length_exceeded",
        )
    if not asked:
        return min(max_tokens, room)
    if max_tokens > room:
        raise RequestError(
            f"{name} is too large: this model's maximum context length is {CONTEXT_TOKENS:,} tokens, and you "
            f"requested {prompt_tokens + max_tokens:,} tokens ({prompt_tokens:,} in the messages + {max_tokens:,} "
            f"for {name}). Set {name} to at most {room:,}, or shorten the messages.",
            name,
            code="context_length_exceeded",
        )
    return max_tokens


def _stop(stop: Any) -> tuple[str, ...]:
    """One to :data:`MAX_STOP_STRINGS` non-empty strings, as the client checks (an empty string would match anywhere)."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= MAX_STOP_STRINGS
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise RequestError(
            f"stop must be a non-empty string or a list of 1 to {MAX_STOP_STRINGS} non-empty strings, not {stop!r}",
            "stop",
        )
    return tuple(stops)


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RequestError(f"seed must be an integer, not {seed!r}", "seed")
    return seed % 2**64


def _reasoning_budget(body: dict[str, Any]) -> int:
    """Reasoning's own budget for a thinking model: 0 when switched off, else max_tokens, effort or medium.

    Generation also stops reasoning at the request's ``max_tokens``, which bounds reasoning and answer together.
    """
    reasoning = body.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise RequestError("reasoning must be an object", "reasoning")
    try:  # the client's checks of the reasoning object (core/params.py), so a hand-made request meets the same
        for switch in ("enabled", "exclude"):
            _boolean(reasoning, switch, False)
        budget = reasoning.get("max_tokens")
        if budget is not None:
            budget = int(_number(reasoning, "max_tokens", 1, CONTEXT_TOKENS, True, 0))
    except RequestError as error:
        raise RequestError(f"reasoning.{error.message}", "reasoning") from None
    thinking = body.get("thinking") or {}
    if reasoning.get("enabled") is False or (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        return 0
    if budget is not None:
        return budget
    effort = reasoning.get("effort", "medium")
    if effort not in EFFORT_BUDGETS:
        raise RequestError(f"reasoning.effort must be one of {', '.join(EFFORT_BUDGETS)}", "reasoning")
    return EFFORT_BUDGETS[effort]


def _reasoning_excluded(body: dict[str, Any]) -> bool:
    reasoning = body.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("exclude") is True
