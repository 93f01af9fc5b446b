"""Provider tool-call streams (shapes from protocol.md and the OpenAI, DeepSeek and OpenRouter docs) and a real HTTP
server on 127.0.0.1 that answers a tool loop's requests with them in turn."""

from __future__ import annotations

import json

from wire import serve


def sse(*chunks: dict, done: bool = True) -> bytes:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def _chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {
        "id": "gen-t",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def call_stream(
    calls: list[tuple[str, str, str]],
    *,
    reasoning: str = "",
    field: str = "reasoning_content",
    piece: int = 3,
    done: bool = True,
) -> bytes:
    """A step that calls tools: optional thinking first, then each call's id and name, then its arguments cut into
    ``piece``-character fragments, ``finish_reason: tool_calls``, usage in a ``choices: []`` chunk."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    for i in range(0, len(reasoning), 5):
        chunks.append(_chunk({"content": "", field: reasoning[i : i + 5]}))
    for index, (call_id, name, arguments) in enumerate(calls):
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(_chunk({"content": None, "tool_calls": [head]}))
        for i in range(0, len(arguments), piece):
            part = {"index": index, "function": {"arguments": arguments[i : i + piece]}}
            chunks.append(_chunk({"tool_calls": [part]}))
    if done:
        chunks.append(_chunk({}, "tool_calls"))
        chunks.append(
            {"id": "gen-t", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": _usage(7)}
        )
    return sse(*chunks, done=done)


def answer_stream(text: str) -> bytes:
    return sse(
        _chunk({"role": "assistant", "content": text}),
        _chunk({}, "stop"),
        {"id": "gen-t", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": _usage(5)},
    )


def _usage(completion: int) -> dict:
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


class ScriptServer:
    """Answers the n-th request with the n-th body of ``script`` (set before each test); keeps every request."""

    def __init__(self) -> None:
        self.script: list[bytes] = []
        self.requests: list[dict] = []
        self._server, self.base_url = serve(self._app())

    def play(self, *bodies: bytes) -> str:
        self.script = list(bodies)
        self.requests = []
        return self.base_url

    def _app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def completions(request: Request) -> Response:
            self.requests.append(await request.json())
            if not self.script:
                return JSONResponse({"error": {"message": "the script is over"}}, status_code=500)
            return Response(self.script.pop(0), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])

    def stop(self) -> None:
        self._server.should_exit = True
