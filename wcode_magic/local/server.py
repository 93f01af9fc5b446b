"""The local OpenAI-compatible server (starlette; uvicorn runs it): ``GET /v1/models``, ``POST /v1/chat/completions``.

It never checks the API key. In test mode the ``X-Wcode-Fault`` header (see :mod:`.faults`) injects failures; outside
test mode the header is ignored, so a stray header cannot break a classroom demo.

Requests pass :mod:`.door` first (Host and Content-Type), so a web page in the user's browser cannot use the
model. Generation runs in worker threads, never in the event loop: a long whole answer computed in the loop kept
every other request (the kernel's own) waiting for it. Streams are generated lazily and sent in small batches: at
most :data:`FLUSH_EVENTS` events or :data:`FLUSH_SECONDS` of generation per ASGI send (the first event alone), so
the first tokens arrive at once and long streams are not slowed by one send (or one thread hop) per token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import CONTEXT_TOKENS, LOOPBACK_HOSTS, jsonmode, toolcalls, wire
from .chat import MODELS, ChatRequest, RequestError, drop_prefill, parse_chat_request
from .door import Door
from .faults import HEADER, KEY_HEADER, Faults, FaultSyntaxError, TimesLedger, parse_faults
from .generate import Abandoned, Generation, Token
from .ngram import NgramModel, default_model, tokenize

FLUSH_EVENTS = 16
FLUSH_SECONDS = 0.02
INLINE_REASONING_BUDGET = 48
DISCONNECT_POLL_S = 0.1  # how often a whole answer being computed checks that its client is still there
log = logging.getLogger("wcode_magic.local")
_INLINE_TAGS = ("<think>\n", "\n</think>\n\n")
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_FAULT_ERRORS = {
    401: ("authentication_error", "Invalid API key"),
    402: ("insufficient_quota", "Insufficient credits: add credits to continue"),
    403: ("permission_error", "Your input was flagged by moderation"),
    404: ("not_found_error", "No endpoint found for this model"),
    408: ("timeout", "The request timed out upstream"),
    422: ("invalid_request_error", "Invalid parameter value"),
    429: ("rate_limit_error", "Rate limit exceeded: slow down"),
    500: ("server_error", "Internal server error"),
    502: ("server_error", "Provider returned an error"),
    503: ("server_error", "Service unavailable: no provider could serve the request"),
}


class InjectedDrop(Exception):
    """Raised to make uvicorn close a connection abruptly (the ``drop_after`` fault)."""


def _single(error: BaseException | None) -> BaseException | None:
    """The one exception inside (nested) exception groups of one, as task groups wrap them; else ``error``."""
    while len(getattr(error, "exceptions", ())) == 1:
        error = error.exceptions[0]  # type: ignore[union-attr]
    return error


class _QuietDrops(logging.Filter):
    """Keeps uvicorn's error log free of the tracebacks of deliberately dropped connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(_single(record.exc_info[1] if record.exc_info else None), InjectedDrop)


class _QuietDisconnects:
    """A client that leaves (Stop, an interrupted sweep) is not a server error: starlette raises ClientDisconnect
    when the request body is read after the client has gone (e.g. during a ``delay_ms``, or behind busy streams)
    and, with ASGI spec 2.4, when a stream is sent to it. There is nobody left to answer, so end quietly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            if not isinstance(_single(error), ClientDisconnect):
                raise


@dataclass(frozen=True)
class _Stall:
    seconds: float


_DROP = object()
_END = object()


def create_app(*, test_mode: bool = False, allowed_hosts: Iterable[str] = LOOPBACK_HOSTS) -> Starlette:
    """The ASGI app, answering requests whose Host is one of ``allowed_hosts`` (any port).

    ``app.state.test_mode`` may be switched on later (``local.start(test_mode=True)`` does).
    """
    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        ],
        middleware=[Middleware(Door, allowed_hosts=allowed_hosts), Middleware(_QuietDisconnects)],
    )
    app.state.test_mode = test_mode
    app.state.ledger = TimesLedger()
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_QuietDrops())
    return app


async def list_models(request: Request) -> JSONResponse:
    """The three local model ids in OpenAI's list format, with OpenRouter's ``context_length``."""
    data = [
        {
            "id": model_id,
            "object": "model",
            "created": 0,
            "owned_by": "wcode-magic-local",
            "reasoning": bool(field),
            "context_length": CONTEXT_TOKENS,
        }
        for model_id, field in MODELS.items()
    ]
    return JSONResponse({"object": "list", "data": data})


async def chat_completions(request: Request) -> Response:
    """Validate, apply before-the-answer faults, then answer streamed or whole."""
    faults = None
    if request.app.state.test_mode and (header := request.headers.get(HEADER)):
        try:
            faults = parse_faults(header)
        except FaultSyntaxError as error:
            return _error(RequestError(f"X-Wcode-Fault: {error}", "X-Wcode-Fault"))
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        key = request.headers.get(KEY_HEADER, "")
        if faults.status is not None and request.app.state.ledger.should_fail(faults, header, key):
            return _fault_status(faults)
        if faults.redirect is not None:
            moved = request.url.replace(path="/v1/moved/chat/completions", query="")
            return Response(status_code=faults.redirect, headers={"Location": str(moved)})
    raw = await request.body()
    try:  # decoding and counting a long prompt is work too: off the loop
        answer = await run_in_threadpool(
            _prepare, raw, bool(faults and faults.think_inline), bool(faults and faults.ignore_prefill)
        )
    except RequestError as error:
        return _error(error)
    if answer.chat.stream:
        events = _stream_events(answer, faults)
        return StreamingResponse(_batched(events), media_type="text/event-stream", headers=_STREAM_HEADERS)
    return await _complete(answer, faults, request)


def _prepare(raw: bytes, think_inline: bool, ignore_prefill: bool = False) -> _Answer:
    """Decode and validate the body (raise :class:`RequestError`); the answer, ready to generate."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON") from None
    if ignore_prefill and isinstance(body, dict):
        body = drop_prefill(body)
    model = default_model()
    chat = parse_chat_request(body, model)
    plan = toolcalls.plan(body)
    prefix: list[Token] = []
    if plan is not None and plan.results:  # answer from the tool results: quote them, then continue from them
        prefix = [_tag(t) for t in tokenize(toolcalls.result_sentence(plan.results))]
        generation = chat.generation
        generation = replace(
            generation,
            prompt=toolcalls.continuation_prompt(plan.results),
            max_tokens=max(generation.max_tokens - len(prefix), 1),
        )
        chat = replace(chat, generation=generation)
    answer = _Answer(chat, model, inline_reasoning=think_inline and chat.reasoning_field is None)
    answer.calls = plan.calls if plan is not None else ()
    answer.prefix = prefix
    return answer


def _error(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _fault_status(faults: Faults) -> JSONResponse:
    """The injected error response, with ``Retry-After`` in seconds or as an HTTP-date."""
    status = faults.status or 500
    kind, message = _FAULT_ERRORS[status]
    body = {"error": {"message": f"{message} (injected by X-Wcode-Fault)", "type": kind, "code": status}}
    headers = {}
    if faults.retry_after is not None:
        seconds = faults.retry_after
        headers["Retry-After"] = (
            formatdate(time.time() + seconds, usegmt=True) if faults.retry_after_date else f"{seconds:g}"
        )
    return JSONResponse(body, status_code=status, headers=headers)


class _Answer:
    """One request's generation and the bookkeeping shared by the streamed and whole answers."""

    def __init__(self, chat: ChatRequest, model: NgramModel, inline_reasoning: bool) -> None:
        self.chat = chat
        self.model = model
        self.inline_reasoning = inline_reasoning
        generation = chat.generation
        if inline_reasoning:  # the two tags are completion tokens too: they come out of max_tokens
            generation = replace(
                generation,
                reasoning_budget=INLINE_REASONING_BUDGET,
                max_tokens=max(generation.max_tokens - len(_INLINE_TAGS), 0),
            )
        self.generation = Generation(generation, model)
        prefix = "gen-" if chat.reasoning_field == "reasoning" else "chatcmpl-"
        self.id = prefix + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.reasoning_tokens = 0
        self.answer_tokens = 0
        self.calls: tuple[toolcalls.Call, ...] = ()  # tool calls instead of an answer (local/toolcalls.py)
        self.prefix: list[Token] = []  # fixed tokens before the answer (the tool results quoted)

    def reasoning(self) -> Iterator[Token]:
        """Reasoning tokens sent in the dialect's reasoning field (none for local/ngram), counted."""
        if self.inline_reasoning:
            return
        for token in self.generation.reasoning():
            self.reasoning_tokens += 1
            yield token

    def answer(self) -> Iterator[Token]:
        """Answer tokens, counted; with ``think_inline`` the reasoning comes first inside <think>…</think>.

        Everything sent, tags included, stays within ``max_tokens`` (a ``max_tokens`` under 2 cuts the tags).
        """
        tokens: Iterator[Token] = self._answer_tokens()
        if self.prefix:
            limit = max(self.chat.generation.max_tokens + len(self.prefix) - self.reasoning_tokens, 0)
            tokens = itertools.islice(itertools.chain(self.prefix, tokens), limit)
        if self.inline_reasoning:
            opening, closing = (_tag(t) for t in _INLINE_TAGS)
            tokens = itertools.chain([opening], self.generation.reasoning(), [closing], tokens)
            tokens = itertools.islice(tokens, self.chat.generation.max_tokens)
        for token in tokens:
            self.answer_tokens += 1
            yield token

    def _answer_tokens(self) -> Iterator[Token]:
        """The generated answer: text, or JSON for the request's response format (call after the reasoning)."""
        plan = self.chat.json_plan
        if plan is None:
            return self.generation.answer()
        room = self.generation.request.max_tokens - self.generation.reasoning_used
        return jsonmode.answer(plan, self.generation, room)

    @property
    def finish_reason(self) -> str:
        """Why the answer ended, once :meth:`answer` is exhausted (cut before the generation ended: the length)."""
        return self.generation.finish_reason or "length"

    def usage(self) -> dict[str, Any]:
        """Usage of what was generated so far: reasoning and answer tokens as counted while sending."""
        return wire.usage(self.chat.prompt_tokens, self.reasoning_tokens, self.answer_tokens)


def _tag(text: str) -> Token:
    """A fixed token of the inline-reasoning markup: not sampled, so logprob 0 and no alternatives."""
    return Token(text, -1, 0.0, ([], []))


def _stream_events(answer: _Answer, faults: Faults | None) -> Iterator[Any]:
    """SSE event strings, interleaved with fault actions (:class:`_Stall`, ``_DROP``) for :func:`_batched`."""
    chat = answer.chat
    encoder = wire.StreamEncoder(chat, answer.id, answer.created, answer.model.vocab)
    keepalive = bool(faults and faults.keepalive)
    pace = _Pace(faults.pace) if faults and faults.pace else None
    if keepalive:
        yield wire.PROCESSING
    yield encoder.role()
    for token in answer.reasoning():
        if chat.show_reasoning:
            yield encoder.reasoning(token)
        if pace:
            yield from pace.tick()
    if answer.calls:
        for part in toolcalls.call_fragments(answer.calls):
            answer.answer_tokens += 1
            yield encoder.tool_call(part)
        yield encoder.finish("tool_calls")
        if chat.include_usage:
            yield encoder.usage(answer.usage())
        yield wire.DONE
        return
    plan = _FaultPlan(faults, encoder) if faults and faults.affects_stream else None
    if plan:
        yield from plan.due(0)
    tokens: Iterator[Token] = answer.answer()
    if faults and faults.endless:
        tokens = _endless(tokens)
    for sent, token in enumerate(tokens, start=1):
        if keepalive:
            yield wire.KEEPALIVE
        yield encoder.content(token)
        if faults and faults.endless and sent % 16 == 0:
            yield _Stall(0.08)  # ~200 tokens a second: endless, without taking a core
        if pace:
            yield from pace.tick()
        if plan:
            yield from plan.due(sent)
            if plan.ended:
                return
    if plan:
        yield from plan.due(None)
        if plan.ended:
            return
    yield encoder.finish(answer.finish_reason)
    if chat.include_usage:
        yield encoder.usage(answer.usage())
    yield wire.DONE


class _Pace:
    """The ``pace`` fault: a pause after every 16 tokens, so that they come at most ``rate`` a second."""

    EVERY = 16

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.count = 0

    def tick(self) -> Iterator[_Stall]:
        self.count += 1
        if self.count % self.EVERY == 0:
            yield _Stall(self.EVERY / self.rate)


class _FaultPlan:
    """The ``*_after`` faults of one stream, fired once each at their token count (or at the end of the answer)."""

    def __init__(self, faults: Faults, encoder: wire.StreamEncoder) -> None:
        self.encoder = encoder
        self.stall_s = faults.stall_s
        self.ended = False
        self._pending = sorted(
            (n, kind)
            for kind, n in (
                ("malformed", faults.malformed_after),
                ("stall", faults.stall_after),
                ("error", faults.error_after),
                ("drop", faults.drop_after),
                ("flood", faults.flood_after),
                ("trickle", faults.trickle_after),
            )
            if n is not None
        )

    def due(self, sent: int | None) -> Iterator[Any]:
        """Actions due after ``sent`` answer tokens (``None``: the answer has ended, fire the rest)."""
        while self._pending and not self.ended and (sent is None or self._pending[0][0] <= sent):
            _, kind = self._pending.pop(0)
            if kind == "malformed":
                yield wire.MALFORMED
            elif kind == "stall":
                yield _Stall(self.stall_s)
            elif kind == "error":
                self.ended = True
                yield self.encoder.error(502, "Provider disconnected unexpectedly")
            elif kind == "flood":
                yield from _forever(wire.KEEPALIVE)
            elif kind == "trickle":
                yield "data: {"
                yield from _forever(" ")
            else:
                self.ended = True
                yield _DROP


def _endless(tokens: Iterator[Token]) -> Iterator[Token]:
    """The answer's tokens, then its last one again and again, paced: an answer that never ends."""
    last = _tag(" ")
    for last in tokens:
        yield last
    while True:
        yield last


def _forever(text: str) -> Iterator[Any]:
    """``text`` every 50 ms, forever (until the client leaves)."""
    while True:
        yield text
        yield _Stall(0.05)


async def _batched(events: Iterator[Any]) -> AsyncIterator[bytes]:
    """ASGI sends of the events, each batch generated in a worker thread; performs the fault actions."""
    limit = 1  # the first event alone: the client sees the stream start at once
    while True:
        text, action = await run_in_threadpool(_next_batch, events, limit)
        limit = FLUSH_EVENTS
        if text:
            yield text.encode()
        if action is _END:
            return
        if action is _DROP:
            raise InjectedDrop("connection dropped by X-Wcode-Fault")
        if isinstance(action, _Stall):
            await asyncio.sleep(action.seconds)


def _next_batch(events: Iterator[Any], limit: int) -> tuple[str, Any]:
    """Up to ``limit`` SSE events or FLUSH_SECONDS of generation, joined, and what ended the batch: None (it is
    full), a fault action (:class:`_Stall`, ``_DROP``) or ``_END``."""
    batch: list[str] = []
    deadline = time.perf_counter() + FLUSH_SECONDS
    for event in events:
        if type(event) is not str:
            return "".join(batch), event
        batch.append(event)
        if len(batch) >= limit or time.perf_counter() >= deadline:
            return "".join(batch), None
    return "".join(batch), _END


async def _complete(answer: _Answer, faults: Faults | None, request: Request) -> Response:
    """A non-streamed answer; the ``*_after`` faults map to their whole-response equivalents."""
    if faults and faults.never_ends:
        return StreamingResponse(_forever_bytes(b" "), media_type="application/json")
    try:
        body = await _unless_client_leaves(answer, request)
    except Abandoned as gone:
        log.info("the client left; its whole answer was stopped after %d tokens", gone.args[0])
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it
    if faults and faults.stall_after is not None:
        await asyncio.sleep(faults.stall_s)
    if faults and faults.error_after is not None:
        return JSONResponse(
            {"error": {"code": 502, "message": "Provider disconnected unexpectedly", "type": "server_error"}},
            status_code=502,
        )
    if faults and faults.drop_after is not None:
        return _DroppedResponse(body)
    if faults and faults.malformed_after is not None:
        body = b"{not json"
    if faults and faults.keepalive:
        body = b"\n\n" + body
    return Response(body, media_type="application/json")


async def _unless_client_leaves(answer: _Answer, request: Request) -> bytes:
    """``_whole_body`` in a worker thread, stopped (Abandoned) at its next token once the client has gone: a
    stopped ``wm.chat(stream=False)`` must not leave the model computing thousands of tokens nobody will read."""
    work = asyncio.ensure_future(run_in_threadpool(_whole_body, answer))
    while not work.done():
        await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
        if not work.done() and await request.is_disconnected():
            answer.generation.abandoned.set()
    return await work


def _whole_body(answer: _Answer) -> bytes:
    """The whole answer's JSON body: generation and encoding, both in a worker thread."""
    chat = answer.chat
    reasoning = "".join(t.text for t in answer.reasoning())
    if answer.calls:
        answer.answer_tokens = len(toolcalls.call_fragments(answer.calls))
        body = wire.completion_body(
            chat,
            answer.id,
            answer.created,
            reasoning=reasoning if chat.show_reasoning and answer.reasoning_tokens else None,
            content="",
            finish_reason="tool_calls",
            entries=None,
            usage_value=answer.usage(),
        )
        body["choices"][0]["message"].update(content=None, tool_calls=toolcalls.message_calls(answer.calls))
        return wire.dumps(body)
    tokens = list(answer.answer())
    entries = [wire.logprob_entry(t, answer.model.vocab) for t in tokens] if chat.logprobs else None
    return wire.dumps(
        wire.completion_body(
            chat,
            answer.id,
            answer.created,
            reasoning=reasoning if chat.show_reasoning and answer.reasoning_tokens else None,
            content="".join(t.text for t in tokens),
            finish_reason=answer.finish_reason,
            entries=entries,
            usage_value=answer.usage(),
        )
    )


async def _forever_bytes(data: bytes) -> AsyncIterator[bytes]:
    """A body that never ends: ``data`` every 50 ms (JSON allows whitespace before the value)."""
    while True:
        yield data
        await asyncio.sleep(0.05)


class _DroppedResponse(Response):
    """Announces the whole body, sends half of it, then drops the connection."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise InjectedDrop("connection dropped by X-Wcode-Fault")
