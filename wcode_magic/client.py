"""The HTTP side: send one chat request, retry what is safe to retry, read the stream into a Response.

Policy (design.md, protocol.md): retries with exponential backoff and jitter on connection errors, 408, 429 and
5xx *before the first byte*, honouring ``Retry-After`` up to ``Settings.retry_cap_s``; a stream that started is
never retried. A gap timeout between reads makes a stalled stream fail in about a minute. ``achat`` is the one
implementation; ``chat`` runs it on a private event loop in a worker thread, so it works inside a notebook cell
(where a loop is already running) without nest_asyncio, and a kernel interrupt stops it with the partial kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from . import catalog, errors, params, session
from .response import Response
from .settings import KEY_URL, SESSION, Secret
from .stream import DONE, Event, loads

T = TypeVar("T")
OnEvent = Callable[[Event], None]
Observer = Callable[[Response], None]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_observers: list[Observer] = []


def add_observer(fn: Observer) -> None:
    """Call ``fn(response)`` after every call ends, complete or not (history, usage totals, ``wm.last()``)."""
    if fn not in _observers:
        _observers.append(fn)


add_observer(session.remember)


def _notify(response: Response) -> None:
    for fn in list(_observers):
        fn(response)


# -- pure policy ------------------------------------------------------------------------------------------
def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``Retry-After`` seconds, or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retry_delay(attempt: int, retry_after: float | None, cap: float) -> float:
    """Wait before retry number ``attempt`` (0-based): the server's ask if any, else 0.5 s x 2^n, jittered."""
    if retry_after is not None:
        return min(retry_after, cap)
    base = min(0.5 * 2**attempt, 8.0)
    return base * (0.75 + random.random() * 0.5)


def error_message(body: Any) -> str:
    """The server's own words from an OpenAI-style error body (or the raw text)."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    return str(body)[:500] if body else ""


def status_error(
    status: int, body: Any, *, retry_after: float | None = None, model: str = "", base_url: str = ""
) -> errors.WcodeError:
    """The exception for an HTTP error status, worded to say what to do next."""
    said = error_message(body)
    said_part = f" The server said: {said}" if said else ""
    if status in (401, 403):
        return errors.AuthenticationError(
            f"HTTP {status}: the API key was refused or is missing.{said_part} Set it with `%wcode key` or the "
            f"WCODE_API_KEY environment variable (get one at {KEY_URL}), or use the local model: "
            "`%wcode use local`.",
            status=status,
            body=body,
        )
    if status == 402:
        return errors.InsufficientCreditError(
            f"HTTP 402: the account is out of credit.{said_part} Top up at https://wcode.net, or use the local model.",
            status=status,
            body=body,
        )
    if status == 404:
        return errors.NotFoundError(
            f"HTTP 404: model {model!r} or the endpoint was not found at {base_url}.{said_part} "
            "`%wcode models` lists known ids.",
            status=status,
            body=body,
        )
    if status in (400, 422):
        param = body.get("error", {}).get("param") if isinstance(body, dict) else None
        return errors.InvalidParameterError(
            f"HTTP {status}: the server rejected the request.{said_part}",
            param=param,
            status=status,
            body=body,
        )
    if status == 429:
        wait = f" It asked to wait {retry_after:.0f} s." if retry_after is not None else ""
        return errors.RateLimitError(
            f"HTTP 429: rate limited, still after retries.{wait}{said_part} Wait a little and run again.",
            retry_after=retry_after,
            status=status,
            body=body,
        )
    if status >= 500:
        return errors.ServerError(
            f"HTTP {status}: the server had trouble, still after retries.{said_part} Try again later.",
            status=status,
            body=body,
        )
    return errors.WcodeError(f"HTTP {status}.{said_part}", status=status, body=body)


# -- request building -------------------------------------------------------------------------------------
def build_messages(prompt_or_messages: str | list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """A prompt becomes one user turn; a message list is sent as given, with ``system`` put first if new."""
    if isinstance(prompt_or_messages, str):
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt_or_messages}]
    else:
        messages = [dict(m) for m in prompt_or_messages]
        if not messages:
            raise errors.InvalidParameterError("messages is empty: give a prompt or at least one message.")
    if system and not (messages and messages[0].get("role") == "system"):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def build_request(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    model: str | None,
    system: str | None,
    stream: bool,
    extra_body: Mapping[str, Any] | None,
    call_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON body to send: session defaults under this call's parameters, all validated before sending."""
    model_id = SESSION.resolve_model(model)
    merged = {**SESSION.params, **call_params}
    body: dict[str, Any] = {
        "model": model_id,
        "messages": build_messages(prompt_or_messages, system if system is not None else SESSION.system),
        **params.validate(merged, catalog.lookup(model_id)),
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}  # required on the Ark path, harmless elsewhere
    if extra_body:
        body.update(extra_body)
    return body


# -- transport --------------------------------------------------------------------------------------------
_clients: dict[tuple[str, str, int], httpx.AsyncClient] = {}


def _client(base_url: str, key: Secret | None) -> httpx.AsyncClient:
    """One AsyncClient per (base_url, key, event loop): connections are reused and never cross loops."""
    loop = asyncio.get_running_loop()
    cache_key = (base_url, key.reveal() if key else "", id(loop))
    client = _clients.get(cache_key)
    if client is None or client.is_closed:
        headers = {"Authorization": f"Bearer {key.reveal()}"} if key else {}
        client = httpx.AsyncClient(
            headers=headers,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            timeout=httpx.Timeout(SESSION.gap_timeout, connect=SESSION.connect_timeout),
        )
        _clients[cache_key] = client
    return client


async def achat(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    model: str | None = None,
    system: str | None = None,
    stream: bool = True,
    base_url: str | None = None,
    api_key: str | None = None,
    on_event: OnEvent | None = None,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    **call_params: Any,
) -> Response:
    """Send one chat request and return its Response.

    ``on_event`` first receives ``Event("start", response)`` (so a caller holds the partial Response even if
    it is cancelled), then every reasoning/content/logprobs/usage/finish event as it arrives. ``timeout`` is
    the gap allowed between stream reads (the whole wait for a non-streamed answer). Parameters are
    validated before anything is sent. Failures after the first token raise StreamError carrying
    ``.partial``; a cancelled call re-raises CancelledError with the Response marked stopped.
    """
    body = build_request(
        prompt_or_messages,
        model=model,
        system=system,
        stream=stream,
        extra_body=extra_body,
        call_params=call_params,
    )
    url_base = SESSION.resolve_base_url(base_url, body["model"])
    key = SESSION.key_for(url_base, api_key)
    response = Response(body, base_url=url_base)
    if on_event is not None:
        on_event(Event("start", response))
    gap = timeout if timeout is not None else (SESSION.gap_timeout if stream else max(SESSION.gap_timeout, 600.0))
    try:
        await _send(response, body, url_base, key, gap, headers or {}, on_event)
    except asyncio.CancelledError:
        response.finish(complete=False, stopped=True)
        _notify(response)
        raise
    except errors.WcodeError as e:
        if response.latency_s is None:
            response.finish(complete=False)
        if e.partial is None and (response.text or response.reasoning):
            e.partial = response
        _notify(response)
        raise
    _notify(response)
    return response


async def _send(
    response: Response,
    body: dict[str, Any],
    base_url: str,
    key: Secret | None,
    gap: float,
    headers: Mapping[str, str],
    on_event: OnEvent | None,
) -> None:
    client = _client(base_url, key)
    url = base_url + "/chat/completions"
    timeout = httpx.Timeout(gap, connect=SESSION.connect_timeout)
    attempt = 0
    while True:
        request = client.build_request("POST", url, json=body, headers=headers, timeout=timeout)
        try:
            http = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as e:
            if attempt < SESSION.max_retries:
                await asyncio.sleep(retry_delay(attempt, None, SESSION.retry_cap_s))
                attempt += 1
                continue
            raise errors.APIConnectionError(
                f"Could not reach {base_url} ({type(e).__name__}: {e}). Check the address and your connection; "
                "for the offline model use `%wcode use local`."
            ) from None
        except httpx.TimeoutException:
            raise errors.ServerError(f"No answer from {base_url} within {gap:.0f} s.") from None
        try:
            if http.status_code >= 400:
                retry_after = parse_retry_after(http.headers)
                if http.status_code in RETRY_STATUSES and attempt < SESSION.max_retries:
                    await http.aread()
                    await asyncio.sleep(retry_delay(attempt, retry_after, SESSION.retry_cap_s))
                    attempt += 1
                    continue
                raw = await http.aread()
                try:
                    err_body: Any = loads(raw)
                except ValueError:
                    err_body = raw.decode("utf-8", "replace")
                raise status_error(
                    http.status_code,
                    err_body,
                    retry_after=retry_after,
                    model=body["model"],
                    base_url=base_url,
                )
            content_type = http.headers.get("content-type", "")
            if "text/event-stream" in content_type:
                await _read_stream(response, http, gap, on_event)
            else:
                await _read_whole(response, http, on_event)
            return
        finally:
            await http.aclose()


async def _read_whole(response: Response, http: httpx.Response, on_event: OnEvent | None) -> None:
    """A non-streamed answer (or a server that ignored ``stream: true``) folds like one big chunk."""
    raw = await http.aread()
    try:
        data = loads(raw)
    except ValueError:
        response.finish(complete=False)
        raise errors.ServerError(
            f"The server answered with something that is not JSON: {raw[:200]!r}", body=raw
        ) from None
    events = response.feed(data) + response.finish(complete=True)
    if on_event is not None:
        for ev in events:
            on_event(ev)
    if response.error is not None:
        raise errors.ServerError(f"The server reported an error: {error_message(data)}", partial=response)


async def _read_stream(response: Response, http: httpx.Response, gap: float, on_event: OnEvent | None) -> None:
    done = False
    feed = response.feed
    try:
        async for sse in EventSource(_EndWithBlankLine(http)).aiter_sse():  # type: ignore[arg-type]
            data = sse.data
            if not data:
                continue
            if data == DONE:
                done = True
                break
            try:
                chunk = loads(data)
            except ValueError:
                raise _stream_failure(response, f"a malformed event arrived: {data[:80]!r}") from None
            events = feed(chunk)
            if on_event is not None:
                for ev in events:
                    on_event(ev)
            if response.error is not None:
                raise _stream_failure(response, f"the server reported an error mid-stream: {error_message(chunk)}")
    except httpx.ReadTimeout:
        raise _stream_failure(response, f"no data arrived for {gap:.0f} s (the stream stalled)") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        raise _stream_failure(response, f"the connection dropped ({type(e).__name__})") from None
    if not done:
        raise _stream_failure(response, "the stream ended without [DONE]")
    flushed = response.finish(complete=True)
    if on_event is not None:
        for ev in flushed:
            on_event(ev)


class _EndWithBlankLine:
    """The response body plus one last blank line, so httpx-sse dispatches an event cut off by the end of the
    stream (``data: [DONE]`` with no blank line after it: protocol.md) instead of silently dropping it."""

    def __init__(self, http: httpx.Response) -> None:
        self.headers = http.headers
        self._http = http

    async def aiter_text(self) -> AsyncIterator[str]:
        async for text in self._http.aiter_text():
            yield text
        yield "\n\n"


def _stream_failure(response: Response, why: str) -> errors.StreamError:
    """Finish the partial Response and make the error that carries it."""
    response.finish(complete=False)
    kept = f" Kept {len(response.text)} characters of answer and {len(response.reasoning)} of thinking."
    return errors.StreamError(f"The stream broke: {why}.{kept} Run again to retry.", partial=response)


# -- the synchronous face ----------------------------------------------------------------------------------
class _LoopThread:
    """A private event loop in a daemon thread, for sync calls from code that may already run a loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="wcode-magic-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Awaitable[T], on_interrupt: Callable[[], BaseException | None] | None = None) -> T:
        """Run ``coro`` to the end; on KeyboardInterrupt cancel it and raise what ``on_interrupt`` gives."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())  # type: ignore[arg-type]
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(timeout=5)
            replacement = on_interrupt() if on_interrupt else None
            if replacement is not None:
                raise replacement from None
            raise


LOOP = _LoopThread()


def chat(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    model: str | None = None,
    system: str | None = None,
    stream: bool = True,
    base_url: str | None = None,
    api_key: str | None = None,
    on_event: OnEvent | None = None,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    **call_params: Any,
) -> Response:
    """``achat`` for code that is not async. Ctrl-C / kernel interrupt raises StoppedError with ``.partial``.

    ``on_event`` runs in the worker thread: write to a widget or display handle there, never ``print``.
    """
    holder: list[Response] = []

    def capture(ev: Event) -> None:
        if ev.kind == "start":
            holder.append(ev.value)
        if on_event is not None:
            on_event(ev)

    def stopped() -> BaseException:
        partial = holder[0] if holder else None
        return errors.StoppedError("Stopped; the partial answer is kept in `.partial`.", partial=partial)

    return LOOP.run(
        achat(
            prompt_or_messages,
            model=model,
            system=system,
            stream=stream,
            base_url=base_url,
            api_key=api_key,
            on_event=capture,
            timeout=timeout,
            headers=headers,
            extra_body=extra_body,
            **call_params,
        ),
        on_interrupt=stopped,
    )
