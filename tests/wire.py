"""Recorded wire shapes from protocol.md, and a real HTTP server on 127.0.0.1 that replays them byte for byte.

The replay server lets the client's whole path (HTTP status and content-type checks, SSE framing by core/sse.py,
chunk parsing, folding) run against exactly the bytes providers send, without the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def _sse(*events: str, done: bool = True, tail: str = "\n\n") -> bytes:
    body = "".join(e if e.startswith(":") else f"data: {e}\n\n" for e in events)
    if done:
        body += "data: [DONE]" + tail
    return body.encode()


OPENROUTER_REASONING = _sse(
    ": OPENROUTER PROCESSING\n\n",
    '{"id":"gen-1","object":"chat.completion.chunk","model":"deepseek/deepseek-r1-0528-qwen3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Okay, the user","reasoning_details":[{"type":"reasoning.text","text":"Okay, the user","index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}',
    '{"id":"gen-1","object":"chat.completion.chunk","model":"deepseek/deepseek-r1-0528-qwen3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":" asks 2+2.","reasoning_details":[{"type":"reasoning.text","text":" asks 2+2.","index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}',
    '{"id":"gen-1","object":"chat.completion.chunk","model":"deepseek/deepseek-r1-0528-qwen3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"4","reasoning":null,"reasoning_details":[]},"finish_reason":null,"logprobs":null}]}',
    '{"id":"gen-1","object":"chat.completion.chunk","model":"deepseek/deepseek-r1-0528-qwen3-8b","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop","native_finish_reason":"stop"}]}',
    '{"id":"gen-1","object":"chat.completion.chunk","model":"deepseek/deepseek-r1-0528-qwen3-8b","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}],"usage":{"prompt_tokens":12,"completion_tokens":41,"total_tokens":53,"completion_tokens_details":{"reasoning_tokens":39}}}',
)

ARK_R1 = _sse(
    '{"choices":[{"delta":{"content":"","reasoning_content":"嗯，用户问的是","role":"assistant"},"index":0}],"id":"021755","model":"deepseek-r1-250528","service_tier":"default","object":"chat.completion.chunk","usage":null}',
    '{"choices":[{"delta":{"content":"答案是 4。","role":"assistant"},"index":0}],"id":"021755","model":"deepseek-r1-250528","object":"chat.completion.chunk","usage":null}',
    '{"choices":[{"delta":{"content":""},"finish_reason":"stop","index":0}],"id":"021755","model":"deepseek-r1-250528","object":"chat.completion.chunk","usage":null}',
    '{"choices":[],"id":"021755","model":"deepseek-r1-250528","object":"chat.completion.chunk","usage":{"prompt_tokens":10,"completion_tokens":120,"total_tokens":130,"completion_tokens_details":{"reasoning_tokens":112}}}',
)

MIDSTREAM_ERROR = _sse(
    '{"id":"gen-2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"reasoning":"Thinking first."},"finish_reason":null}]}',
    '{"id":"gen-2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"The answer"},"finish_reason":null}]}',
    '{"id":"gen-2","object":"chat.completion.chunk","error":{"code":502,"message":"Provider disconnected unexpectedly","metadata":{"error_type":"provider_unavailable"}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}',
    done=False,
)

LOGPROBS = _sse(
    '{"id":"gen-3","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null,"logprobs":{"content":[{"token":"Hello","logprob":-0.0312,"bytes":[72,101,108,108,111],"top_logprobs":[{"token":"Hello","logprob":-0.0312,"bytes":[72,101,108,108,111]},{"token":"Hi","logprob":-3.52,"bytes":[72,105]}]}],"refusal":null}}]}',
    '{"id":"gen-3","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop","logprobs":{"content":[{"token":"!","logprob":-9999.0,"bytes":[33],"top_logprobs":[{"token":".","logprob":-0.1,"bytes":[46]}]}],"refusal":null}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
)

# Qwen through some servers: <think> inline in content, tags cut across chunks; `data:` without a space;
# keep-alive comments; [DONE] without the trailing blank line.
THINK_INLINE = (
    b": keep-alive\n\n"
    b'data:{"id":"q","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"<thi"}}]}\n\n'
    b'data: {"id":"q","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"nk>plan the</th"}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"q","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"ink>\\n\\nFinal <think> stays"}}]}\n\n'
    b'data: {"id":"q","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}\n\n'
    b"data: [DONE]"
)

NO_DONE = _sse(
    '{"id":"n","model":"m","choices":[{"index":0,"delta":{"content":"cut off"}}]}',
    done=False,
)

MALFORMED = _sse(
    '{"id":"n","model":"m","choices":[{"index":0,"delta":{"content":"before "}}]}',
    '{"id":"n","model":"m","choices":[{"index":0,"delta":{"content":',
)

TOOL_CALLS = _sse(
    '{"id":"t","model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}',
    '{"id":"t","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": "}}]}}]}',
    '{"id":"t","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":8,"total_tokens":28}}',
)

# Logprobs requested but the provider dropped them (OpenRouter forwards, providers ignore).
LOGPROBS_IGNORED = _sse(
    '{"id":"e","model":"m","choices":[{"index":0,"delta":{"content":"Yes"},"logprobs":{"content":[],"refusal":[]}}]}',
    '{"id":"e","model":"m","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop","logprobs":null}]}',
)

# OpenRouter with an OpenAI reasoning model: the details are a summary (same text as delta.reasoning) and an
# encrypted blob (no text at all); both are kept verbatim for the next turn, neither is reasoning text again.
REASONING_DETAILS_KINDS = _sse(
    '{"id":"gen-4","model":"openai/o4-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Plan: add the numbers.","reasoning_details":[{"type":"reasoning.summary","summary":"Plan: add the numbers.","id":"rs_1","format":"openai-responses-v1","index":0}]},"finish_reason":null}]}',
    '{"id":"gen-4","model":"openai/o4-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":null,"reasoning_details":[{"type":"reasoning.encrypted","data":"gAAAAABoEncryptedBlob==","id":"rs_1","format":"openai-responses-v1","index":1}]},"finish_reason":null}]}',
    '{"id":"gen-4","model":"openai/o4-mini","choices":[{"index":0,"delta":{"content":"4","reasoning":null,"reasoning_details":[]},"finish_reason":"stop","native_finish_reason":"completed"}],"usage":{"prompt_tokens":9,"completion_tokens":70,"total_tokens":79,"completion_tokens_details":{"reasoning_tokens":64}}}',
)

# vLLM between its renames sends the reasoning under both names in one delta; also "reasoning": "" beside it.
BOTH_REASONING_FIELDS = _sse(
    '{"id":"v","model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"role":"assistant","reasoning":"Think","reasoning_content":"Think"},"finish_reason":null}]}',
    '{"id":"v","model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"reasoning":"","reasoning_content":" twice?"},"finish_reason":null}]}',
    '{"id":"v","model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"reasoning":null,"reasoning_content":null,"content":"No."},"finish_reason":"stop"}]}',
)

# DeepSeek's prompt-cache counts and OpenRouter's cost in one usage object (each adds its own, protocol.md).
USAGE_EXTRAS = _sse(
    '{"id":"u","model":"deepseek-chat","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}',
    '{"id":"u","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":1,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":32},"prompt_cache_hit_tokens":32,"prompt_cache_miss_tokens":8,"cost":0.0000231,"is_byok":false,"cost_details":{"upstream_inference_cost":null}}}',
)

# llama.cpp's server: an "id" (the token id) on every logprob entry and alternative, "timings" at the end.
LLAMACPP_LOGPROBS = _sse(
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1750000000,"id":"chatcmpl-L","model":"qwen3-8b-q4_k_m.gguf","system_fingerprint":"b5600","object":"chat.completion.chunk"}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hel"},"logprobs":{"content":[{"id":9707,"token":"Hel","bytes":[72,101,108],"logprob":-0.02,"top_logprobs":[{"id":9707,"token":"Hel","bytes":[72,101,108],"logprob":-0.02},{"id":13048,"token":"Hi","bytes":[72,105],"logprob":-4.1}]}]}}],"created":1750000000,"id":"chatcmpl-L","model":"qwen3-8b-q4_k_m.gguf","system_fingerprint":"b5600","object":"chat.completion.chunk"}',
    '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"lo"},"logprobs":{"content":[{"id":385,"token":"lo","bytes":[108,111],"logprob":-0.5,"top_logprobs":[{"id":385,"token":"lo","bytes":[108,111],"logprob":-0.5}]}]}}],"created":1750000000,"id":"chatcmpl-L","model":"qwen3-8b-q4_k_m.gguf","system_fingerprint":"b5600","object":"chat.completion.chunk"}',
    '{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1750000000,"id":"chatcmpl-L","model":"qwen3-8b-q4_k_m.gguf","system_fingerprint":"b5600","object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":4,"total_tokens":6},"timings":{"prompt_n":4,"prompt_ms":10.5,"predicted_n":2,"predicted_ms":20.1}}',
)

# Qwen3 with /no_think at the end of the prompt: an empty think block opens the content (protocol.md).
NO_THINK = (
    b'data: {"id":"nt","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"<think>"}}]}\n\n'
    b'data: {"id":"nt","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"\\n\\n"}}]}\n\n'
    b'data: {"id":"nt","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"</think>"}}]}\n\n'
    b'data: {"id":"nt","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"\\n\\n"}}]}\n\n'
    b'data: {"id":"nt","model":"qwen/qwen3-8b","choices":[{"index":0,"delta":{"content":"2 + 2 = 4."},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)

# A streamed error event whose code is a string, as Ark and OpenAI write it.
STRING_CODE_MIDSTREAM = _sse(
    '{"id":"s","model":"deepseek-r1-250528","choices":[{"index":0,"delta":{"reasoning_content":"Let me"}}]}',
    '{"id":"s","model":"deepseek-r1-250528","error":{"code":"InternalServiceError","message":"The service encountered an unexpected internal error. Request id: 021755","param":"","type":"InternalServerError"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}',
    done=False,
)

# The rest of the event-stream format, as some servers use it: retry/id/event fields, an event whose JSON spans
# two data lines, a comment inside an event, `data:` without the space, and [DONE] cut off without its newline.
FIELDS_MULTILINE = (
    b"retry: 3000\n"
    b"id: 1\n"
    b"event: message\n"
    b'data: {"id":"f","model":"m","choices":[{"index":0,\n'
    b'data: "delta":{"role":"assistant","content":"two"}}]}\n\n'
    b": keep-alive\n"
    b"id: 2\n"
    b'data:{"id":"f","model":"m","choices":[{"index":0,"delta":{"content":" lines"},"finish_reason":"stop"}],\n'
    b": a comment inside the event\n"
    b'data:"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}\n\n'
    b"data: [DONE]"
)

SSE_FIXTURES: dict[str, bytes] = {
    "fields_multiline": FIELDS_MULTILINE,
    "openrouter_reasoning": OPENROUTER_REASONING,
    "ark_r1": ARK_R1,
    "midstream_error": MIDSTREAM_ERROR,
    "logprobs": LOGPROBS,
    "think_inline": THINK_INLINE,
    "no_done": NO_DONE,
    "malformed": MALFORMED,
    "tool_calls": TOOL_CALLS,
    "logprobs_ignored": LOGPROBS_IGNORED,
    "reasoning_details_kinds": REASONING_DETAILS_KINDS,
    "both_reasoning_fields": BOTH_REASONING_FIELDS,
    "usage_extras": USAGE_EXTRAS,
    "llamacpp_logprobs": LLAMACPP_LOGPROBS,
    "no_think": NO_THINK,
    "string_code_midstream": STRING_CODE_MIDSTREAM,
}

# Error bodies as servers send them, by name (``X-Replay-Error``, with ``X-Replay-Status``).
ERROR_BODIES: dict[str, bytes] = {
    # Ark (Volcengine) and OpenAI put a *string* code; Ark's deepseek-r1 answers a logprobs request with it.
    "ark_logprobs": (
        b'{"error":{"code":"InvalidParameter","message":"The parameter `logprobs` specified in the request are not '
        b'valid: the model deepseek-r1 does not support logprobs. Request id: 021755","param":"logprobs",'
        b'"type":"BadRequest"}}'
    ),
    "openai_rate_limit": (
        b'{"error":{"message":"Rate limit reached for requests per min. Please try again in 300ms.",'
        b'"type":"requests","param":null,"code":"rate_limit_exceeded"}}'
    ),
    "openrouter_moderation": (
        b'{"error":{"code":403,"message":"Input was flagged by moderation: violence","metadata":'
        b'{"reasons":["violence"],"flagged_input":"...","provider_name":"OpenAI","model_slug":"openai/gpt-4o"}}}'
    ),
    "bad_key_403": b'{"error":{"code":403,"message":"Invalid API key provided","type":"authentication_error"}}',
}

# Status 200 answers that are not what a chat completion looks like: (content type, body).
RAW_FIXTURES: dict[str, tuple[str, bytes]] = {
    "html_200": ("text/html; charset=utf-8", b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"),
    "text_200": ("text/plain", b"upstream connect error or disconnect/reset before headers"),
    "json_not_completion": ("application/json", b'{"status":"ok","detail":"queued"}'),
    "json_list": ("application/json", b"[1, 2, 3]"),
    # /no_think, not streamed: the empty think block at the start of message.content
    "no_think_whole": (
        "application/json",
        b'{"id":"nt","object":"chat.completion","model":"qwen/qwen3-8b","choices":[{"index":0,"message":'
        b'{"role":"assistant","content":"<think>\\n\\n</think>\\n\\n2 + 2 = 4."},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":14,"completion_tokens":12,"total_tokens":26}}',
    ),
    # an event that is valid JSON but no object
    "sse_non_object": (
        "text/event-stream",
        b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: [1, 2]\n\ndata: [DONE]\n\n',
    ),
    # SSE content type, but an HTML error page as the body
    "html_as_sse": ("text/event-stream", b"<html><body>502 Bad Gateway</body></html>"),
}

JSON_FIXTURES: dict[str, dict] = {
    p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("seed_*.json"))
}

# JSON objects that are no chat completion chunk (r11): each follows a good chunk, streamed as
# ``wrong_shape_N``; as a whole non-streamed answer it is ``wrong_shape_whole_N``.
WRONG_SHAPES = [
    '{"choices":[null]}',
    '{"choices":"oops"}',
    '{"choices":[{"delta":"hi"}]}',
    '{"choices":[{"delta":{"content":5}}]}',
    '{"choices":[{"delta":{"reasoning":["x"]}}]}',
    '{"choices":[{"delta":{"content":"a"},"logprobs":{"content":"x"}}]}',
]
for _i, _shape in enumerate(WRONG_SHAPES):
    SSE_FIXTURES[f"wrong_shape_{_i}"] = _sse('{"id":"w","choices":[{"index":0,"delta":{"content":"before "}}]}', _shape)
    RAW_FIXTURES[f"wrong_shape_whole_{_i}"] = ("application/json", _shape.encode())


# Usage objects whose counts are no counts (item 5): the answer is complete, the counts unknown, a warning says so.
ODD_USAGES = [
    '"n/a"',
    '{"prompt_tokens":"12","completion_tokens":"3","total_tokens":"15"}',
    '{"prompt_tokens":[12],"completion_tokens":{"n":3},"total_tokens":15}',
    '{"prompt_tokens":12,"completion_tokens":' + "9" * 40 + ',"total_tokens":' + "9" * 40 + "}",
    '{"prompt_tokens":18446744073709551615,"completion_tokens":-3,"total_tokens":true}',
    '{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"completion_tokens_details":[39]}',
]
_ANSWER = '{"id":"o","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"The answer"}}]}'
for _i, _usage in enumerate(ODD_USAGES):
    SSE_FIXTURES[f"odd_usage_{_i}"] = _sse(
        _ANSWER,
        '{"id":"o","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":' + _usage + "}",
    )
    RAW_FIXTURES[f"odd_usage_whole_{_i}"] = (
        "application/json",
        (
            '{"id":"o","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",'
            '"content":"The answer"},"finish_reason":"stop"}],"usage":' + _usage + "}"
        ).encode(),
    )


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# JSON nested deeper than any chat completion, after the answer began (item 5): too deep for the standard library
# (orjson refuses it, json would raise RecursionError), and deep enough to break whatever later copies it.
DEEP = {
    "deep_extra_100000": '{"id":"o","model":"m","x":'
    + _deep(100000)
    + ',"choices":[{"index":0,"delta":{"content":"!"}}]}',
    "deep_extra_900": '{"id":"o","model":"m","x":' + _deep(900) + ',"choices":[{"index":0,"delta":{"content":"!"}}]}',
    "deep_usage_500": '{"id":"o","model":"m","choices":[],"usage":{"prompt_tokens":1,"x":' + _deep(500) + "}}",
    "deep_error_500": '{"id":"o","model":"m","error":{"message":"x","metadata":' + _deep(500) + "},"
    '"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}',
    "deep_details_900": '{"id":"o","model":"m","choices":[{"index":0,"delta":{"reasoning_details":['
    + _deep(900)
    + "]}}]}",
}
for _name, _chunk in DEEP.items():
    SSE_FIXTURES[_name] = _sse(_ANSWER, _chunk)
    RAW_FIXTURES[_name + "_whole"] = ("application/json", _chunk.replace('"delta"', '"message"').encode())

# finish_reason "error" with no error object: the server failed, whatever it sent before (item 5)
# logprob entries whose "bytes" is a number, not a list: bytes(5) would be five zero bytes, bytes(10**12) a
# MemoryError; both are "not sent", and the token string decides
for _i, _raw in enumerate(("5", str(10**12), '"e2"', "-1")):
    SSE_FIXTURES[f"odd_bytes_{_i}"] = _sse(
        '{"id":"b","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi",'
        f'"logprob":-0.1,"bytes":{_raw},"top_logprobs":[{{"token":"Hi","logprob":-0.1,"bytes":{_raw}}}]}}]}}}}]}}',
        '{"id":"b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    )
SSE_FIXTURES["finish_error_bare"] = _sse(
    _ANSWER, '{"id":"o","model":"m","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}'
)
RAW_FIXTURES["finish_error_bare_whole"] = (
    "application/json",
    b'{"id":"o","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"The answer"},"finish_reason":"error"}]}',
)


def sse_chunks(raw: bytes) -> list[dict]:
    """The JSON chunks in an SSE byte fixture (for the pure tests)."""
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                data = line[5:].strip()
                if data and data != "[DONE]":
                    with contextlib.suppress(json.JSONDecodeError):
                        out.append(json.loads(data))
    return out


def echo_key_stream(headers, body: dict) -> bytes:
    """An SSE answer quoting the request's bearer token: whole in the reasoning and its details, split over three
    chunks in the answer, and cut off after its first 12 characters at the end (issue 17, item 4). Asked for
    logprobs, each answer piece is also a token, listed among its alternatives with the next piece."""
    token = headers.get("authorization", "").removeprefix("Bearer ")
    third = len(token) // 3
    pieces = ["Your key: ", token[:third], token[third : 2 * third], token[2 * third :], " and again ", token[:12]]
    deltas: list[dict] = [
        {"reasoning": f"The key is {token}.", "reasoning_details": [{"type": "reasoning.text", "text": token}]},
        {"content": "".join(pieces[:2])},
        {"content": pieces[2]},
        {"content": "".join(pieces[3:])},
    ]
    chunks = [{"id": "echo", "model": "m", "choices": [{"index": 0, "delta": d}]} for d in deltas]
    if body.get("logprobs"):
        tokens = [pieces[:2], pieces[2:3], pieces[3:]]
        for chunk, group in zip(chunks[1:], tokens, strict=True):
            entries = []
            for piece in group:
                following = pieces[(pieces.index(piece) + 1) % len(pieces)]
                alts = [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())}
                    for t, lp in ((piece, -0.1), (following, -2.5))
                ]
                entries.append({"token": piece, "logprob": -0.1, "bytes": list(piece.encode()), "top_logprobs": alts})
            chunk["choices"][0]["logprobs"] = {"content": entries}
    chunks.append({"id": "echo", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


class ReplayServer:
    """A starlette app on 127.0.0.1 that answers each request with the fixture named in ``X-Replay``.

    ``X-Replay-Status`` returns that status with a JSON error body instead (as real servers do before a stream):
    the body named by ``X-Replay-Error`` (``ERROR_BODIES``, or ``echo-key``: one quoting the bearer token) or a
    generic one; ``X-Replay-Retry-After-Ms`` adds a
    ``retry-after-ms`` header. With ``X-Replay-Times: N`` only the first N requests carrying the same
    ``X-Replay-Key`` get the status; later ones are answered with the ``X-Replay`` fixture (a retried request).
    ``X-Replay`` may also name a ``RAW_FIXTURES`` entry (a 200 that is no completion). An SSE fixture is sent with
    its line ends rewritten as ``X-Replay-Newline`` says (``crlf`` or ``cr``) and, with ``X-Replay-Split: N``, in
    HTTP chunks of N bytes (each read by the client on its own: cuts inside lines, ``\\r\\n`` and characters).
    Every request body is kept in ``.requests`` so tests can check what the client sent.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.base_url = ""
        self._server = None
        self._times: dict[str, int] = {}

    def _fails(self, headers) -> bool:
        times = headers.get("x-replay-times")
        if times is None:
            return True
        key = headers.get("x-replay-key", "")
        self._times[key] = self._times.get(key, 0) + 1
        return self._times[key] <= int(times)

    def _app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def completions(request: Request) -> Response:
            self.requests.append(await request.json())
            self.headers.append(dict(request.headers))
            status = request.headers.get("x-replay-status")
            if status and self._fails(request.headers):
                extra = {}
                if "x-replay-retry-after-ms" in request.headers:
                    extra["retry-after-ms"] = request.headers["x-replay-retry-after-ms"]
                error = request.headers.get("x-replay-error")
                if error == "echo-key":  # a proxy that quotes the bearer token back in its error (one-api style)
                    token = request.headers.get("authorization", "").removeprefix("Bearer ")
                    return JSONResponse({"error": {"message": f"invalid token {token}"}}, status_code=int(status))
                if error:
                    return Response(ERROR_BODIES[error], int(status), extra, media_type="application/json")
                return JSONResponse(
                    {"error": {"message": f"replayed {status}", "code": int(status), "param": "temperature"}},
                    status_code=int(status),
                    headers=extra,
                )
            name = request.headers.get("x-replay", "")
            if name == "echo-key-stream":  # a server that echoes the bearer token in pieces across chunks
                return Response(echo_key_stream(request.headers, self.requests[-1]), media_type="text/event-stream")
            if name in JSON_FIXTURES:
                return JSONResponse(JSON_FIXTURES[name])
            if name in RAW_FIXTURES:
                media_type, raw = RAW_FIXTURES[name]
                return Response(raw, media_type=media_type)
            newline = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}[request.headers.get("x-replay-newline", "lf")]
            raw = SSE_FIXTURES[name].replace(b"\n", newline)
            size = int(request.headers.get("x-replay-split", "0"))
            if not size:
                return Response(raw, media_type="text/event-stream")

            async def pieces():  # each piece its own HTTP chunk, so the client reads them apart
                for i in range(0, len(raw), size):
                    yield raw[i : i + size]

            return StreamingResponse(pieces(), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])

    def start(self) -> str:
        self._server, self.base_url = serve(self._app())
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


def serve(app):
    """Serve an ASGI app on a free port of 127.0.0.1 in a daemon thread: (the uvicorn Server, its ``/v1`` URL)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", interface="asgi3")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}/v1"


class CountingServer:
    """The bundled local model server (test mode) behind a counter of every HTTP request that reaches it, whatever
    its path or body: a test can assert that a refused call sent nothing at all."""

    def __init__(self) -> None:
        from wcode_magic.local.server import create_app

        self.count = 0
        self._app = create_app(test_mode=True)
        self._server, self.base_url = serve(self._counted)

    async def _counted(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self._app(scope, receive, send)

    def stop(self) -> None:
        self._server.should_exit = True


def _content_sse(model: str, pieces: list[str]) -> bytes:
    chunks = [{"id": "x", "model": model, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"id": "x", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


class SchemaRefusingServer:
    """A server that refuses json_schema (as many OpenAI-compatible servers do) and answers json_object requests
    with the pieces it is given (``.pieces``, content deltas of one streamed answer); every request body kept."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        self.requests: list[dict] = []
        self.pieces = ['{"label": "yes"', ', "reason": "fine", "score": 0.5}']

        async def completions(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            if body.get("response_format", {}).get("type") == "json_schema":
                return JSONResponse(
                    {
                        "error": {
                            "message": "This response_format type is unavailable now: json_schema",
                            "type": "invalid_request_error",
                            "param": None,
                        }
                    },
                    status_code=400,
                )
            return Response(_content_sse(body["model"], self.pieces), media_type="text/event-stream")

        self._server, self.base_url = serve(
            Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
        )

    def stop(self) -> None:
        self._server.should_exit = True


TRANSPORT = ["sync"]  # set by conftest's ``transport`` fixture


def ask(replay: ReplayServer, name: str, headers: dict | None = None, **kw):
    """Ask the replay server for fixture ``name`` through the transport under test (wm.chat or wm.achat)."""
    import wcode_magic as wm

    kw = {"base_url": replay.base_url, "headers": {"X-Replay": name, **(headers or {})}, **kw}
    return wm.chat("hi", **kw) if TRANSPORT[0] == "sync" else asyncio.run(wm.achat("hi", **kw))
