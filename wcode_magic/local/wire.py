"""What the local server puts on the wire: SSE events and JSON bodies in three dialects.

- ``local/ngram``: plain OpenAI (a role chunk, one token per chunk, an empty finish delta, usage in a
  ``choices: []`` chunk).
- ``local/ngram-thinking``: OpenRouter (``role`` on every delta, ``delta.reasoning`` plus ``reasoning_details``
  carrying the same text, ``native_finish_reason``, usage on a chunk with one empty choice).
- ``local/ngram-thinking-rc``: DeepSeek/Ark (``delta.reasoning_content``, ``"usage": null`` on every chunk, usage in
  a final ``choices: []`` chunk).

Streaming speed matters (benchmarks stream 20,000 chunks), so each event is one string built from a per-response
prefix and cached JSON fragments of the token, instead of a dict per chunk through a JSON encoder.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from .chat import ChatRequest
from .generate import Token

try:
    import orjson

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes (orjson when installed: it is several times faster)."""
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - depends on the environment

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes (orjson when installed: it is several times faster)."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"
PROCESSING = ": OPENROUTER PROCESSING\n\n"
MALFORMED = "data: {not json\n\n"
OUT_OF_RANGE_LOGPROB = -9999.0
_SENTINEL = repr(OUT_OF_RANGE_LOGPROB)
_FLOOR = float("-inf")
_TOP_MEMO_SIZE = 16384


@functools.lru_cache(maxsize=16384)
def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=16384)
def _entry_parts(text: str) -> tuple[str, str]:
    """The fixed parts of a logprob entry around its number: ``{"token":…,"logprob":`` and ``,"bytes":[…]``."""
    return '{"token":' + _string(text) + ',"logprob":', ',"bytes":' + json.dumps(list(text.encode())).replace(" ", "")


def logprob_entry(token: Token, vocab: tuple[str, ...]) -> dict[str, Any]:
    """One ``logprobs.content`` entry as a dict (for non-streamed bodies)."""
    ids, values = token.top or ([], [])
    alts = getattr(token, "alts", None)  # jsonmode's tokens name their alternatives by text
    pairs = alts if alts is not None else [(vocab[i], v) for i, v in zip(ids, values, strict=True)]
    return {
        "token": token.text,
        "logprob": _finite(token.logprob),
        "bytes": list(token.text.encode()),
        "top_logprobs": [{"token": t, "logprob": _finite(v), "bytes": list(t.encode())} for t, v in pairs],
    }


def _finite(value: float) -> float:
    return value if math.isfinite(value) else OUT_OF_RANGE_LOGPROB


@functools.lru_cache(maxsize=4)
def _vocabulary_parts(vocab: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``_entry_parts`` of every vocabulary token, as two lists indexed by token id (no hashing per entry)."""
    parts = [_entry_parts(token) for token in vocab]
    return [head for head, _ in parts], [tail + "}" for _, tail in parts]


def _text_entry(text: str, value: float) -> str:
    """One alternative named by its text (not a vocabulary id) as JSON."""
    head, tail = _entry_parts(text)
    return head + (repr(value) if value > _FLOOR else _SENTINEL) + tail + "}"


def _top_json(top: tuple[list[int], list[float]], heads: list[str], tails: list[str]) -> str:
    ids, values = top
    return ",".join(
        [heads[i] + (repr(v) if v > _FLOOR else _SENTINEL) + tails[i] for i, v in zip(ids, values, strict=True)]
    )


def usage(prompt_tokens: int, reasoning_tokens: int, answer_tokens: int) -> dict[str, Any]:
    """The usage object; completion tokens include reasoning tokens, as on every upstream."""
    completion = reasoning_tokens + answer_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


class StreamEncoder:
    """The SSE events of one streamed response, as ``str`` (the caller joins a batch and encodes once)."""

    def __init__(self, chat: ChatRequest, completion_id: str, created: int, vocab: tuple[str, ...]) -> None:
        self.vocab = vocab
        self.logprobs = chat.logprobs
        self._heads, self._tails = _vocabulary_parts(vocab) if chat.logprobs else ([], [])
        self._top_memo: dict[int, tuple[object, str]] = {}
        self.field = chat.reasoning_field
        self._open = (
            f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
            f'"model":"{chat.model}","choices":[{{"index":0,"delta":{{'
        )
        self._close = "}]" + (',"usage":null' if self.field == "reasoning_content" else "") + "}\n\n"
        self._head = self._open[: -len('"choices":[{"index":0,"delta":{')]
        self._role = '"role":"assistant",' if self.field else ""
        self._after_content = ',"reasoning":null}' if self.field == "reasoning" else "}"

    def _event(self, delta: str, finish: str = "null", logprobs: str = "null") -> str:
        native = ',"native_finish_reason":' + finish if self.field == "reasoning" else ""
        return self._open + delta + '},"finish_reason":' + finish + native + ',"logprobs":' + logprobs + self._close

    def role(self) -> str:
        """The opening chunk: the assistant role and empty content, as OpenAI sends first."""
        return self._event('"role":"assistant","content":""')

    def reasoning(self, token: Token) -> str:
        """One reasoning token in the dialect's field (OpenRouter also repeats it in ``reasoning_details``)."""
        text = _string(token.text)
        if self.field == "reasoning":
            details = (
                ',"reasoning_details":[{"type":"reasoning.text","text":' + text + ',"index":0,"format":"unknown"}]'
            )
            return self._event('"role":"assistant","content":"","reasoning":' + text + details)
        return self._event('"role":"assistant","content":"","reasoning_content":' + text)

    def content(self, token: Token) -> str:
        """One answer token, with its logprob entry when logprobs were asked for."""
        native = ',"native_finish_reason":null' if self.field == "reasoning" else ""
        logprobs = '{"content":[' + self._entry(token) + '],"refusal":null}' if self.logprobs else "null"
        return (
            self._open
            + self._role
            + '"content":'
            + _string(token.text)
            + self._after_content
            + ',"finish_reason":null'
            + native
            + ',"logprobs":'
            + logprobs
            + self._close
        )

    def tool_call(self, part: dict[str, Any]) -> str:
        """One ``delta.tool_calls`` fragment (local/toolcalls.py decides what the model calls)."""
        return self._event(self._role + '"content":null,"tool_calls":[' + dumps(part).decode() + "]")

    def _entry(self, token: Token) -> str:
        """The logprob entry as JSON; the alternatives' JSON is memoised per list (shared by a context's draws)."""
        head, tail = _entry_parts(token.text)
        value = token.logprob
        alts = getattr(token, "alts", None)  # jsonmode's tokens name their alternatives by text
        if alts is not None:
            listed = ",".join(_text_entry(t, v) for t, v in alts)
            return head + (repr(value) if value > _FLOOR else _SENTINEL) + tail + ',"top_logprobs":[' + listed + "]}"
        top = token.top or ([], [])
        memo = self._top_memo.get(id(top))
        if memo is None or memo[0] is not top:
            if len(self._top_memo) >= _TOP_MEMO_SIZE:
                self._top_memo.clear()
            memo = (top, _top_json(top, self._heads, self._tails))
            self._top_memo[id(top)] = memo
        return head + (repr(value) if value > _FLOOR else _SENTINEL) + tail + ',"top_logprobs":[' + memo[1] + "]}"

    def finish(self, reason: str) -> str:
        """The chunk carrying finish_reason."""
        delta = "" if self.field is None else '"content":""'
        return self._event(delta, finish=f'"{reason}"')

    def usage(self, value: dict[str, Any]) -> str:
        """The usage chunk: ``choices: []`` (OpenAI, Ark) or one empty choice (OpenRouter)."""
        if self.field == "reasoning":
            choices = (
                '[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,'
                '"native_finish_reason":null,"logprobs":null}]'
            )
        else:
            choices = "[]"
        return self._head + '"choices":' + choices + ',"usage":' + dumps(value).decode() + "}\n\n"

    def error(self, code: int, message: str) -> str:
        """A mid-stream error: a top-level ``error`` object and ``finish_reason: "error"`` (OpenRouter style)."""
        error = {"code": code, "message": message, "metadata": {"error_type": "provider_unavailable", "injected": True}}
        return (
            self._head
            + '"error":'
            + dumps(error).decode()
            + ',"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error","logprobs":null}]}\n\n'
        )


def completion_body(
    chat: ChatRequest,
    completion_id: str,
    created: int,
    *,
    reasoning: str | None,
    content: str,
    finish_reason: str,
    entries: list[dict[str, Any]] | None,
    usage_value: dict[str, Any],
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` body in the model's dialect."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason}
    if chat.reasoning_field == "reasoning":
        message["reasoning"] = reasoning
        message["reasoning_details"] = (
            [{"type": "reasoning.text", "text": reasoning, "index": 0, "format": "unknown"}] if reasoning else []
        )
        choice["native_finish_reason"] = finish_reason
    elif chat.reasoning_field == "reasoning_content" and reasoning is not None:
        message["reasoning_content"] = reasoning
    choice["logprobs"] = {"content": entries, "refusal": None} if entries is not None else None
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "choices": [choice],
        "usage": usage_value,
    }
