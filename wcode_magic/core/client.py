"""The HTTP side: send one chat request, retry what is safe to retry, read the stream into a Response.

Policy (design.md, protocol.md): retries with exponential backoff and jitter on connection errors, 408, 429 and
5xx *before the first byte*, honouring ``Retry-After`` up to ``Settings.retry_cap_s``; a stream that started is
never retried. A gap timeout between reads makes a stalled stream fail in about a minute. ``achat`` (httpx
AsyncClient) and ``chat`` (httpx Client, no event loop, so it works inside a notebook cell where a loop is already
running, without nest_asyncio) share the policy and the folding in ``_Call``; a kernel interrupt stops ``chat``
with the partial kept. ``LOOP`` runs async work (sweeps) for sync callers.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import email.utils
import logging
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from . import budget, catalog, errors, hooks, params, toolspec
from . import schema as schemas
from .keys import Secret, scrub_all
from .response import Response
from .sendable import check_headers, check_json
from .served import BASE_URL, swap_text
from .settings import KEY_URL, SESSION, SETTINGS, is_wcode
from .sse import SSEDecoder
from .stream import DONE, SHAPE_ERRORS, Event, loads

T = TypeVar("T")
OnEvent = Callable[[Event], None]

log = logging.getLogger("wcode_magic.client")  # silent unless the user configures logging; never the key
DRAIN_S = 1.0  # how long to wait for the end of a body after [DONE] before closing the connection instead
TICK_S = 0.1  # how often an async call in the main thread wakes its loop, so a kernel interrupt lands at once
# A stream is stopped once its answer chunks pass OVERRUN x max_tokens + OVERRUN_SLACK. A server that honours
# max_tokens sends at most max_tokens answer chunks (each carries at least one token); twice that is far past any
# counting difference (a token split over two chunks, tags of an inline think block), and the slack keeps tiny
# max_tokens from tripping it. Reasoning is not counted: DeepSeek's max_tokens leaves the thinking out.
OVERRUN = 2
OVERRUN_SLACK = 16
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
STOPPED = "Stopped; the partial answer is kept in `.partial` (and `wm.last()`)."


class _SessionDefault:
    """``deadline``'s default: the session's (``None`` is taken: it means no limit)."""

    def __repr__(self) -> str:
        return "<the session's deadline>"


SESSION_DEFAULT: Any = _SessionDefault()


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


def _sentence(text: str) -> str:
    """The server's words as a sentence of ours: trimmed, ending in a full stop unless they already end one."""
    text = text.strip()
    return text if not text or text[-1] in ".!?。！？" else text + "."


def _seconds(s: float) -> str:
    """A wait in words: a decimal below 10 s (0.3, 1.5), whole seconds above."""
    if s >= 10:
        return f"{s:.0f}"
    return f"{s:.2g}" if s < 1 else f"{round(s, 1):g}"


_KEY_WORDS = ("key", "auth", "token", "credential", "unauthori")


def _about_the_key(said: str, body: Any) -> bool:
    """Whether a 403 is about the key itself (as a 401 is), not moderation or a permission for this request."""
    err = body.get("error") if isinstance(body, dict) else None
    kind = str(err.get("type") or "") if isinstance(err, dict) else ""
    return any(w in f"{said} {kind}".lower() for w in _KEY_WORDS)


SET_KEY = (
    f"Set it with `%wcode key` or the WCODE_API_KEY environment variable (get one at {KEY_URL}), or use the "
    "local model: `%wcode use local`."
)


def status_error(
    status: int, body: Any, *, retry_after: float | None = None, model: str = "", base_url: str = ""
) -> errors.WcodeError:
    """The exception for an HTTP error status, worded to say what to do next."""
    said = _sentence(error_message(body))
    said_part = f" The server said: {said}" if said else ""
    if status == 401 or (status == 403 and _about_the_key(said, body)):
        what = "the API key was refused or is missing" if status == 401 else "the API key was refused"
        return errors.AuthenticationError(f"HTTP {status}: {what}.{said_part} {SET_KEY}", status=status, body=body)
    if status == 403:
        return errors.AuthenticationError(
            f"HTTP 403: the server refused the request.{said_part} This is usually moderation (the input was "
            f"flagged) or a model this key may not use: change the input, or pick another model (`%wcode models`).",
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
        err = body.get("error") if isinstance(body, dict) else None
        param = err.get("param") if isinstance(err, dict) else None
        return errors.InvalidParameterError(
            f"HTTP {status}: the server rejected the request.{said_part}",
            param=param,
            status=status,
            body=body,
        )
    if status == 429:
        wait = f" It asked to wait {_seconds(retry_after)} s." if retry_after is not None else ""
        return errors.RateLimitError(
            f"HTTP 429: rate limited, still after retries.{wait}{said_part} Wait a little and run again.",
            retry_after=retry_after,
            status=status,
            body=body,
        )
    if status == 408:
        return errors.ServerError(
            f"HTTP 408: the request timed out at the server, still after retries.{said_part} Try again later; "
            "a shorter prompt or a smaller max_tokens finishes sooner.",
            status=status,
            body=body,
        )
    if status == 409:
        return errors.ServerError(
            f"HTTP 409: the server reported a conflict, still after retries.{said_part} Try again in a moment.",
            status=status,
            body=body,
        )
    if status >= 500:
        return errors.ServerError(
            f"HTTP {status}: the server had trouble, still after retries.{said_part} Try again later.",
            status=status,
            body=body,
        )
    return errors.WcodeError(f"HTTP {status}: the server refused the request.{said_part}", status=status, body=body)


# -- request building -------------------------------------------------------------------------------------
def build_messages(prompt_or_messages: str | list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """A prompt becomes one user turn; a message list is sent as given, with ``system`` put first if new."""
    if isinstance(prompt_or_messages, str):
        if not prompt_or_messages.strip():
            raise errors.InvalidParameterError(
                f"The prompt {prompt_or_messages!r} is empty: give the text to send, or a list of messages.",
                param="prompt",
                value=prompt_or_messages,
            )
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt_or_messages}]
    else:
        _check_messages(prompt_or_messages)
        messages = [dict(m) for m in prompt_or_messages]
        if not messages:
            raise errors.InvalidParameterError("messages is empty: give a prompt or at least one message.")
    if system is not None and not isinstance(system, str):
        raise errors.InvalidParameterError(
            f"system={system!r} is not allowed: system takes a string (the system prompt), or None.",
            param="system",
            value=system,
        )
    if system and not (messages and messages[0].get("role") == "system"):
        messages.insert(0, {"role": "system", "content": system})
    return messages


_PROMPT_TAKES = (
    "the prompt takes a string or a list of message dicts such as "
    "[{'role': 'user', 'content': 'Hello'}] (each with a 'role')"
)


def _check_messages(value: Any) -> None:
    """A list (or tuple) of message mappings, each with a role; else InvalidParameterError naming the prompt."""
    if not isinstance(value, (list, tuple)):
        raise errors.InvalidParameterError(
            f"The prompt {_short(value)} is not allowed: {_PROMPT_TAKES}, not {type(value).__name__}.",
            param="prompt",
            value=value,
        )
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or "role" not in m:
            what = "has no 'role'" if isinstance(m, Mapping) else f"is not a dict but {type(m).__name__}"
            raise errors.InvalidParameterError(
                f"The prompt's message {i} ({_short(m)}) {what}: {_PROMPT_TAKES}.", param="prompt", value=value
            )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_request(
    prompt_or_messages: str | list[dict[str, Any]],
    *,
    model: str | None,
    system: str | None,
    stream: bool,
    extra_body: Mapping[str, Any] | None,
    call_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON body to send: session defaults under this call's parameters, all validated before sending.

    Every part is also checked to be sendable JSON (``_check_sendable``), so what httpx would fail to encode is
    an InvalidParameterError naming the part, not a ValueError or UnicodeEncodeError from inside httpx.
    """
    _check_call_values(model, stream, extra_body)
    model_id = SESSION.resolve_model(model)
    merged = {**SESSION.params, **call_params}
    system = system if system is not None else SESSION.system
    checked = params.validate(merged, catalog.lookup(model_id), also=params.CHAT_KEYWORDS)
    body: dict[str, Any] = {
        "model": model_id,
        "messages": build_messages(prompt_or_messages, system),
        **checked,
        "stream": stream,
    }
    _check_sendable(
        {"model": model_id, _prompt_name(prompt_or_messages): prompt_or_messages, "system": system, **checked},
        extra_body,
    )
    if stream:
        body["stream_options"] = {"include_usage": True}  # required on the Ark path, harmless elsewhere
    if extra_body:
        body.update(extra_body)
    return body


def _check_call_values(model: Any, stream: Any, extra_body: Any) -> None:
    """The call's own keywords that are part of the body: a model id, a bool, an object of extra fields."""
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise errors.InvalidParameterError(
            f"model={model!r} is not allowed: model takes a model id such as {catalog.DEFAULT_MODEL!r} "
            "(`wm.models()` lists known ones), or None for the session's model.",
            param="model",
            value=model,
        )
    if not isinstance(stream, bool):
        raise errors.InvalidParameterError(
            f"stream={stream!r} is not allowed: stream takes True or False.", param="stream", value=stream
        )
    if extra_body is not None and not (
        isinstance(extra_body, Mapping) and all(isinstance(k, str) and k for k in extra_body)
    ):
        raise errors.InvalidParameterError(
            f"extra_body={_short(extra_body)} is not allowed: extra_body takes a dict of top-level body fields "
            'to add, such as {"top_k": 20} (non-empty string keys), or None.',
            param="extra_body",
            value=extra_body,
        )


def _prompt_name(prompt_or_messages: Any) -> str:
    return "prompt" if isinstance(prompt_or_messages, str) else "messages"


def _check_sendable(parts: Mapping[str, Any], extra_body: Mapping[str, Any] | None) -> None:
    """The whole body, part by part as the user gave it, checked to be JSON a server can read (NaN, lone
    surrogates, 64-bit integers, nesting): one place, so an error names the part and the path inside it."""
    for name, value in parts.items():
        check_json(value, name)
    if extra_body:
        check_json(dict(extra_body), "extra_body")


# -- what both transports share ---------------------------------------------------------------------------
class _Call:
    """One call's state, shared by the sync and async transports: the Response being built and the policy."""

    def __init__(
        self,
        prompt_or_messages: str | list[dict[str, Any]],
        *,
        model: str | None,
        system: str | None,
        stream: bool,
        base_url: str | None,
        api_key: str | None,
        on_event: OnEvent | None,
        timeout: float | None,
        headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
        call_params: Mapping[str, Any],
        deadline: Any = SESSION_DEFAULT,
        cache: bool | None = None,
        schema: Any = None,
        fallback: bool = False,
    ) -> None:
        self.schema = None if schema is None else schemas.to_schema(schema)
        schemas.check_call(self.schema, call_params)
        self.body = build_request(
            prompt_or_messages,
            model=model,
            system=system,
            stream=stream,
            extra_body=extra_body,
            call_params=call_params,
        )
        self.base_url = SESSION.resolve_base_url(base_url, self.body["model"])
        self.url = self.base_url + "/chat/completions"
        self.fallback = fallback
        if self.schema is not None:  # schema=: json_schema, or json_object + instructions where it was refused
            self.fallback = fallback or schemas.REFUSALS.refused(self.base_url, self.body["model"])
            entry = catalog.lookup(self.body["model"])
            self.body = schemas.shape_body(
                self.body, self.schema, structured=entry is not None and not entry.local, fallback=self.fallback
            )
        self.key = SESSION.key_for(self.base_url, api_key)
        if self.key is None and is_wcode(self.base_url):  # say so now, not after retries or a 401
            raise errors.AuthenticationError(f"No API key for wcode.net. {SET_KEY}")
        self.headers = check_headers(headers)
        timeout = None if timeout is None else SETTINGS["gap_timeout"].check(timeout, "timeout")
        self.gap = (
            timeout if timeout is not None else (SESSION.gap_timeout if stream else max(SESSION.gap_timeout, 600.0))
        )
        self.deadline = SESSION.deadline if deadline is SESSION_DEFAULT else SETTINGS["deadline"].check(deadline)
        # a silence is cut at the gap or the deadline, whichever is sooner (a sync read cannot be cut mid-way)
        read = self.gap if self.deadline is None else min(self.gap, self.deadline)
        self.timeout = httpx.Timeout(read, connect=SESSION.connect_timeout)
        self.ends_at = None if self.deadline is None else time.monotonic() + self.deadline
        max_tokens = self.body.get("max_tokens")
        self.answer_cap = OVERRUN * max_tokens + OVERRUN_SLACK if isinstance(max_tokens, int) else None
        self.answer_chunks = 0
        self.on_event = on_event
        known = tuple(dict.fromkeys((self.key, *SESSION.known_keys()) if self.key else SESSION.known_keys()))
        # what is kept (history, wm.last(), the notebook's output) never holds a key, whoever put it there
        self.response = Response(scrub_all(self.body, known), base_url=self.base_url, secrets=known)
        self.response.schema = self.schema
        self.attempt = 0
        self.done = False
        if hooks.wire_kept():  # a recording is on: keep the stream's events and their times
            self.response.wire = []
        cache = SESSION.cache if cache is None else SETTINGS["cache"].check(cache, "cache")
        # a recording being replayed, or the cache, may answer instead of the server (a strict replay's miss raises)
        self.served = hooks.serve(self.response.request, cache)
        if self.served is not None:
            self.response.replayed = self.served.source == "replayed"
            self.response.cached = self.served.source == "cached"
            self.response.recorded_at = self.served.recorded_at
        # what is about to be sent is priced first (a served answer costs nothing): the long-prompt warning and the
        # session's cap, asked or refused before anything leaves; its worst case is held until the call ends
        self.held = budget.before_call(self.body) if self.served is None else 0.0
        self.emit([Event("start", self.response)])

    def schema_refused(self, error: errors.WcodeError) -> bool:
        """Whether the server refused json_schema for this schema= call, so json_object is worth a try (never for
        the local models: they cannot read instructions, and their 400 names what they cannot honour). Noted for
        the session, and said once per model."""
        if self.schema is None or self.fallback:
            return False
        known = catalog.lookup(self.body["model"])
        if known is not None and known.local:
            return False
        if not schemas.is_format_refusal(error.status, getattr(error, "param", None), error.message):
            return False
        if schemas.REFUSALS.note(self.base_url, self.body["model"]):
            errors.warn_user(
                f"{self.body['model']} at {self.base_url} refused response_format json_schema; using json_object "
                "with the schema in the instructions instead, and checking the answers here (said once per model "
                f"this session). {error.message}"
            )
        return True

    def emit(self, events: list[Event]) -> None:
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)

    def connect_retry(self, e: Exception) -> float:
        """Seconds to wait before retrying a failed connection; raises when no retries are left."""
        if self.attempt >= SESSION.max_retries:
            log.info("%s: %s after %d retries; giving up", self.base_url, type(e).__name__, self.attempt)
            raise self.unreachable(e)
        self.attempt += 1
        wait = retry_delay(self.attempt - 1, None, SESSION.retry_cap_s)
        log.info(
            "%s: %s; retry %d of %d in %.2f s", self.base_url, type(e).__name__, self.attempt, SESSION.max_retries, wait
        )
        return wait

    def unreachable(self, e: Exception) -> errors.APIConnectionError:
        return errors.APIConnectionError(
            f"Could not reach {self.base_url} ({type(e).__name__}: {e}). Check the address and your "
            "connection; for the offline model use `%wcode use local`."
        )

    def status_retry(self, http: httpx.Response) -> float | None:
        """Seconds to wait before retrying an error status, or None when it is final (or not an error)."""
        if http.status_code < 400 or http.status_code not in RETRY_STATUSES:
            return None
        if self.attempt >= SESSION.max_retries:
            log.info("%s: HTTP %d after %d retries; giving up", self.base_url, http.status_code, self.attempt)
            return None
        self.attempt += 1
        asked = parse_retry_after(http.headers)
        wait = retry_delay(self.attempt - 1, asked, SESSION.retry_cap_s)
        log.info(
            "%s: HTTP %d; retry %d of %d in %.2f s%s",
            self.base_url,
            http.status_code,
            self.attempt,
            SESSION.max_retries,
            wait,
            "" if asked is None else f" (Retry-After asked {asked:g} s, cap {SESSION.retry_cap_s:g} s)",
        )
        return wait

    def status_failure(self, http: httpx.Response, raw: bytes) -> errors.WcodeError:
        try:
            err_body: Any = loads(raw)
        except ValueError:
            err_body = raw.decode("utf-8", "replace")
        return status_error(
            http.status_code,
            err_body,
            retry_after=parse_retry_after(http.headers),
            model=self.body["model"],
            base_url=self.base_url,
        )

    def event(self, data: str) -> bool:
        """Fold one SSE data field; True at ``[DONE]``. Raises StreamError on a malformed or error event."""
        if not data:
            return False
        if self.response.wire is not None:
            self.response.wire.append((time.perf_counter() - self.response.started, data))
        if data == DONE:
            self.done = True
            return True
        try:
            chunk = loads(data)
        except ValueError:
            raise self.broken(f"a malformed event arrived: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise self.broken(f"an event arrived that is not a JSON object: {data[:80]!r}")
        response = self.response
        try:
            events = response.feed(chunk, raw=data)
        except SHAPE_ERRORS as e:
            raise self.broken(f"a malformed event arrived (not a chat completion chunk: {e}): {data[:80]!r}") from None
        if self.on_event is not None:
            self.emit(events)
        if response.error is not None:
            raise self.broken(f"the server reported an error mid-stream: {error_message(chunk)}")
        if response.finish_reason == "error":
            raise self.broken("the server ended the answer with finish_reason 'error' and gave no reason")
        if self.answer_cap is not None:
            for ev in events:  # a chunk with answer text counts once
                if ev[0] == "content":
                    self.answer_chunks += 1
                    if self.answer_chunks > self.answer_cap:
                        raise self.broken(
                            f"the answer ran far past max_tokens={self.body['max_tokens']} ({self.answer_chunks} "
                            "pieces so far), so the server is not ending it"
                        )
                    break
        return False

    def no_answer(self) -> errors.ServerError:
        """Nothing came back at all (not even headers) within the read timeout: the gap, or a shorter deadline."""
        if self.deadline is not None and self.deadline <= self.gap:
            return errors.ServerError(
                f"No answer from {self.base_url} within the call's deadline of {_seconds(self.deadline)} s."
            )
        return errors.ServerError(f"No answer from {self.base_url} within {self.gap:.0f} s.")

    def check_deadline(self) -> None:
        """Raise the deadline's StreamError once the call has run past it (called whenever bytes arrive)."""
        if self.ends_at is not None and time.monotonic() > self.ends_at:
            raise self.past_deadline()

    def past_deadline(self) -> errors.StreamError:
        return self.broken(
            f"the call ran past its deadline of {_seconds(self.deadline or 0)} s (a longer one: "
            "`wm.configure(deadline=...)`, None for no limit)"
        )

    def whole(self, raw: bytes) -> None:
        """A non-streamed answer (or a server that ignored ``stream: true``) folds like one big chunk."""
        if self.response.wire is not None:
            self.response.wire_body = raw.decode("utf-8", "replace")
        try:
            data = loads(raw)
        except ValueError:
            data = None
            what = "something that is not JSON"
        else:
            what = "JSON that is not a chat completion"
        if not isinstance(data, dict) or not ("choices" in data or "error" in data):
            self.response.finish(complete=False)
            raise errors.ServerError(
                f"The server answered with {what}: {raw[:200]!r}. Check that base_url ({self.base_url}) is an "
                "OpenAI-compatible API (it usually ends in /v1), or run again if it was a passing fault."
            )
        try:
            events = self.response.feed(data)
        except SHAPE_ERRORS:  # RecursionError too: JSON nested deeper than any answer
            self.response.finish(complete=False)
            raise errors.StreamError(
                f"The server's answer is malformed (not a chat completion): {raw[:200]!r}. Run again to retry.",
                partial=self.response,
            ) from None
        self.emit(events)
        self.emit(self.response.finish(complete=True))
        if self.response.error is not None:
            raise errors.ServerError(
                f"The server reported an error: {_sentence(error_message(data))} Run again to retry.",
                partial=self.response,
            )
        if self.response.finish_reason == "error":
            raise errors.ServerError(
                "The server ended the answer with finish_reason 'error' and gave no reason. Run again to retry.",
                partial=self.response,
            )

    def redirected(self, http: httpx.Response) -> errors.ConfigurationError:
        """A 3xx: say where the server points instead of following it (the key would go along to that address)."""
        location = http.headers.get("location", "")
        target = str(http.url.join(location))[:200] if location else "an address it did not give"
        return errors.ConfigurationError(
            f"HTTP {http.status_code}: {self.base_url} redirects to {target}. Redirects are not followed, so the "
            "API key never goes to another address: if that address is right, use it as base_url "
            "(`wm.configure(base_url=...)`).",
            status=http.status_code,
        )

    def cut_off(self, e: httpx.RequestError) -> errors.WcodeError:
        """A whole (non-streamed) body whose reading failed part way: nothing of it can be used."""
        if isinstance(e, httpx.TimeoutException) and self.ends_at is not None and time.monotonic() >= self.ends_at:
            why = f"the call ran past its deadline of {_seconds(self.deadline or 0)} s"
        elif isinstance(e, httpx.TimeoutException):
            why = f"nothing more arrived for {self.gap:.0f} s"
        else:
            why = f"the connection dropped ({type(e).__name__})"
        self.response.finish(complete=False)
        return errors.StreamError(
            f"The answer broke off: {why} before the whole answer arrived, so none of it could be read. "
            "Run again to retry.",
            partial=self.response,
        )

    def end_of_stream(self) -> None:
        if not self.done:
            raise self.broken("the stream ended without [DONE]")
        self.emit(self.response.finish(complete=True))

    def broken(self, why: str) -> errors.StreamError:
        """Finish the partial Response and make the error that carries it."""
        r = self.response
        r.finish(complete=False)
        kept = f" Kept {len(r.text)} characters of answer and {len(r.reasoning)} of thinking."
        return errors.StreamError(f"{_sentence(f'The stream broke: {why}')}{kept} Run again to retry.", partial=r)

    def stalled(self) -> errors.StreamError:
        if self.ends_at is not None and time.monotonic() >= self.ends_at:
            return self.past_deadline()
        return self.broken(f"no data arrived for {self.gap:.0f} s (the stream stalled)")

    def dropped(self, e: Exception) -> errors.StreamError:
        return self.broken(f"the connection dropped ({type(e).__name__})")

    def failed(self, e: errors.WcodeError) -> None:
        """Any WcodeError: finish the Response if still open and attach it when something had arrived.

        A failure other than a broken stream (an error status after retries, no connection, an unreadable body)
        marks the Response "error", not "incomplete", with the exception's message in ``.error``, so ``wm.last()``
        and the history say what went wrong. A broken stream stays "incomplete" unless the server sent an error.
        """
        if self.key is not None:  # the server's or httpx's words may echo the key: never pass it on
            _scrub_error(e, self.response, self.key)
        if self.response.error is None and not isinstance(e, (errors.StreamError, errors.StoppedError)):
            self.response.error = {"message": e.message, "code": e.status, "type": type(e).__name__}
        if self.response.latency_s is None:
            self.response.finish(complete=False)
        if e.partial is None and (self.response.text or self.response.reasoning):
            e.partial = self.response
        if not isinstance(e, errors.StoppedError):  # how it ended, for a recording (a stop is ``.stopped``)
            self.response.failure = errors.describe(e, self.response.scrub)

    def served_answer(self) -> list[tuple[float, str]]:
        """Start folding the served answer: its body at once, or its events to pace; timings as recorded after."""
        served = self.served
        assert served is not None
        if served.body is not None:
            try:
                self.whole(served.body.encode("utf-8", "surrogatepass"))
            except errors.WcodeError:
                if served.error is None and not served.stopped:
                    raise
            return []
        return served.events

    def served_wait(self, at: float) -> float:
        """Seconds to wait before the event recorded ``at`` seconds in: 0 at instant pace."""
        if self.served is None or self.served.pace != "recorded":
            return 0.0
        return max(0.0, self.response.started + at - time.perf_counter())

    def served_end(self) -> None:
        """A served stream's end, then the timings it was recorded with (what the user saw when it was made). A
        recorded exchange that failed or was stopped ends as it did: the same exception, the partial kept."""
        served = self.served
        assert served is not None
        r = self.response
        ended_badly = served.error is not None or served.stopped
        if ended_badly:
            r.finish(complete=False, stopped=served.stopped)
        elif served.body is None:
            self.end_of_stream()
        r.ttft_s = served.ttft_s if served.ttft_s is not None else r.ttft_s
        r.latency_s = served.latency_s if served.latency_s is not None else r.latency_s
        if served.stopped:
            raise errors.StoppedError(STOPPED, partial=r)
        if served.error is not None:
            raise errors.rebuild(swap_text(served.error, BASE_URL, self.base_url), r)

    def served_event(self, data: str) -> bool:
        """Fold one served event; True at its end. An exchange recorded as failed or stopped ends as it did: an
        error its folding raises (a mid-stream error event) ends the fold, and ``served_end`` raises the recorded
        one."""
        try:
            return self.event(data)
        except errors.WcodeError:
            if self.served is None or not (self.served.error is not None or self.served.stopped):
                raise
            return True

    def stopped(self) -> Response:
        """Mark the Response stopped, unless the answer was already complete (a stop while the body's end after
        ``[DONE]`` is read loses nothing)."""
        if not self.response.complete:
            self.response.finish(complete=False, stopped=True)
        return self.response


def _scrub_error(e: errors.WcodeError, response: Response, key: Secret) -> None:
    """Mask the key in an error's message and body and in the Response's error, before anyone sees them."""
    e.message = key.scrub(e.message)
    e.args = tuple(scrub_all(a, [key]) for a in e.args)
    e.body = scrub_all(e.body, [key])
    if response.error is not None:
        response.error = scrub_all(response.error, [key])


# Failures before a response arrived, safe to retry: no answer was produced (WriteError: the body was not sent).
_CONNECT_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


def _limits() -> httpx.Limits:
    # Sized for sweeps at concurrency 32 and more: httpx's default keeps only 20 alive (design.md).
    return httpx.Limits(max_connections=64, max_keepalive_connections=64)


def _auth(key: Secret | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.reveal()}"} if key else {}


def _read_events(call: _Call, reads: Iterator[bytes]) -> None:
    """Fold the body's events into ``call`` until ``[DONE]`` (or the end of the body, then the event left
    without a blank line after it). ``reads`` is left where it stopped, for ``_drain_sync``."""
    decoder = SSEDecoder()
    fold = call.event
    for chunk in reads:
        call.check_deadline()  # the gap timeout restarts with every byte; keep-alives or a trickle end here
        for sse in decoder.feed(chunk):
            if fold(sse.data):
                return
    for sse in decoder.finish():
        if fold(sse.data):
            return


async def _aread_events(call: _Call, reads: AsyncIterator[bytes]) -> None:
    """``_read_events`` for the async transport."""
    decoder = SSEDecoder()
    fold = call.event
    async for chunk in reads:
        call.check_deadline()
        for sse in decoder.feed(chunk):
            if fold(sse.data):
                return
    for sse in decoder.finish():
        if fold(sse.data):
            return


def _is_sse(http: httpx.Response) -> bool:
    return "text/event-stream" in http.headers.get("content-type", "")


# -- async transport ---------------------------------------------------------------------------------------
class _LoopClients:
    """The AsyncClients of one event loop, one per (base_url, key), closed when that loop shuts down.

    Connections belong to the loop that opened them, so each loop gets its own clients. A loop announces its end
    only to async generators: ``asyncio.run`` (and any runner) calls ``shutdown_asyncgens`` before closing, which
    closes the one parked in ``_closer``, whose ``finally`` closes the clients. Without it every ``asyncio.run``
    in a script left its sockets open (unclosed-transport warnings) and a later loop could reuse a dead loop's id.
    """

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], httpx.AsyncClient] = {}
        self.closer: AsyncIterator[None] | None = None

    async def _closer(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            _loop_clients.pop(asyncio.get_running_loop(), None)
            for client in self.clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def get(self, base_url: str, key: Secret | None) -> httpx.AsyncClient:
        if self.closer is None:
            self.closer = self._closer()
            await anext(self.closer)  # now the loop tracks it and closes it at shutdown; we hold it till then
        cache_key = (base_url, key.reveal() if key else "")
        client = self.clients.get(cache_key)
        if client is None or client.is_closed:
            client = self.clients[cache_key] = httpx.AsyncClient(headers=_auth(key), limits=_limits())
        return client


_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


async def _async_client(base_url: str, key: Secret | None) -> httpx.AsyncClient:
    """The running loop's AsyncClient for (base_url, key): connections are reused and never cross loops."""
    loop = asyncio.get_running_loop()
    clients = _loop_clients.get(loop)
    if clients is None:
        # a loop closed without shutting down its async generators (run_until_complete, then close) never told
        # its clients; their connections keep it alive, so drop such entries here instead of piling them up
        for old in [old for old in _loop_clients if old.is_closed()]:
            _loop_clients.pop(old, None)
        clients = _loop_clients[loop] = _LoopClients()
    return await clients.get(base_url, key)


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
    deadline: float | None = SESSION_DEFAULT,
    headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    cache: bool | None = None,
    schema: Any = None,
    max_steps: int = 8,
    confirm: Any = False,
    **call_params: Any,
) -> Response:
    """Send one chat request and return its Response.

    ``on_event`` first receives ``Event("start", response)`` (so a caller holds the partial Response even if
    it is cancelled), then every reasoning/content/logprobs/usage/finish event as it arrives. ``timeout`` is
    the gap allowed between stream reads (the whole wait for a non-streamed answer); ``deadline`` the seconds
    for the whole call (default: the session's ``deadline``; None: no limit). ``cache=True`` answers a request
    identical to one already completed from the history instead of sending it (default: the session's ``cache``);
    while ``wm.replay`` is on, a recorded answer is served first. Parameters are validated before
    anything is sent. Failures after the first token, the deadline included, raise StreamError carrying
    ``.partial``. A kernel interrupt of ``await wm.achat(...)`` in a cell raises StoppedError with ``.partial``,
    as ``wm.chat`` does; any other cancellation re-raises CancelledError, the Response marked stopped either way.

    ``schema`` (a dataclass, TypedDict, pydantic model, JSON Schema dict or spec string such as
    ``"label: yes|no, reason: str"``, see ``core/schema.py``) asks for JSON of that shape with response_format
    json_schema; where a server refuses json_schema the call is sent again with json_object and the schema in the
    instructions. The answer is read with ``r.parsed`` (SchemaError when it does not fit).

    ``tools`` holding Python functions runs the tool loop (core/toolloop.py): the model calls them, their results
    go back, until it answers or ``max_steps`` model turns have run; ``confirm`` asks before each call.
    """
    if toolspec.runs_tools(call_params.get("tools")):
        loop = hooks.provided("atool_loop")
        return await loop(prompt_or_messages, **_own(locals()), **call_params)
    kw: dict[str, Any] = dict(
        model=model,
        system=system,
        stream=stream,
        base_url=base_url,
        api_key=api_key,
        on_event=on_event,
        timeout=timeout,
        headers=headers,
        extra_body=extra_body,
        call_params=call_params,
        deadline=deadline,
        cache=cache,
        schema=schema,
    )
    call = _Call(prompt_or_messages, **kw)
    try:
        return await _acall(call)
    except errors.InvalidParameterError as e:
        if not call.schema_refused(e):
            raise
    return await _acall(_Call(prompt_or_messages, **kw, fallback=True))


async def _acall(call: _Call) -> Response:
    """Run one call on the caller's loop, its observers told however it ends."""
    try:
        await _within_deadline(call)
    except asyncio.CancelledError:
        hooks.call_ended(call.stopped())
        if _is_cell_task():
            raise errors.StoppedError(STOPPED, partial=call.response) from None
        raise
    except errors.WcodeError as e:
        call.failed(e)
        hooks.call_ended(call.response)
        raise
    else:
        hooks.call_ended(call.response)
    finally:
        budget.release(call.held)  # after the observers: its real cost is in the usage totals by now
    return call.response


def _own(values: Mapping[str, Any]) -> dict[str, Any]:
    """chat's / achat's own keywords from their locals, passed on to the tool loop as given."""
    return {name: values[name] for name in params.CHAT_KEYWORDS}


async def _within_deadline(call: _Call) -> None:
    """``_asend`` in its own task, stopped at the call's deadline, whatever the server sends meanwhile.

    In the main thread the wait wakes every TICK_S: ipykernel turns a kernel interrupt into the cancellation of
    the cell's task only when its loop wakes up, and a stalled read alone would not wake it until the gap timeout.
    A cancellation of this call cancels the task and waits (briefly) for its connection to close.
    """
    here = errors.tasks_warn_here()  # a warning while reading the stream points at the user's line
    task = asyncio.ensure_future(_asend(call))
    errors.tasks_warn_reset(here)
    tick = TICK_S if threading.current_thread() is threading.main_thread() else None
    try:
        while not task.done():
            left = None if call.ends_at is None else call.ends_at - time.monotonic()
            if left is not None and left <= 0:
                task.cancel()
                await asyncio.wait({task}, timeout=DRAIN_S)
                if not task.done() or task.cancelled():  # it may have ended just now: then its own outcome
                    raise call.past_deadline()
                break
            waits = [w for w in (tick, left) if w is not None]
            await asyncio.wait({task}, timeout=min(waits) if waits else None)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task}, timeout=DRAIN_S)
        raise
    task.result()


def _is_cell_task() -> bool:
    """Whether the running task is a notebook cell's own (top-level await): its cancellation is a kernel interrupt.

    ipykernel runs such a cell as a task of ``InteractiveShell.run_cell_async`` and cancels it on an interrupt; it
    is nobody else's to cancel. Any other task keeps asyncio's contract: cancelled, it ends in CancelledError.
    """
    task = asyncio.current_task()
    code = getattr(task.get_coro(), "cr_code", None) if task is not None else None
    return code is not None and code.co_name == "run_cell_async"


async def _aserve(call: _Call) -> None:
    """Fold a served answer (a replay, the cache) as if it streamed in, at its recorded pace if asked."""
    for at, data in call.served_answer():
        wait = call.served_wait(at)
        if wait:
            await asyncio.sleep(wait)
        call.check_deadline()
        if call.served_event(data):
            break
    call.served_end()


async def _asend(call: _Call) -> None:
    if call.served is not None:
        await _aserve(call)
        return
    client = await _async_client(call.base_url, call.key)
    while True:
        call.check_deadline()
        request = client.build_request("POST", call.url, json=call.body, headers=call.headers, timeout=call.timeout)
        try:
            http = await client.send(request, stream=True)
        except _CONNECT_ERRORS as e:
            await asyncio.sleep(call.connect_retry(e))
            continue
        except httpx.TimeoutException:
            raise call.no_answer() from None
        except httpx.RequestError as e:  # a proxy or protocol failure no retry will mend
            raise call.unreachable(e) from None
        try:
            wait = call.status_retry(http)
            if wait is not None:
                with contextlib.suppress(httpx.RequestError):  # the error body is only discarded
                    await http.aread()
                await asyncio.sleep(wait)
                continue
            if http.status_code >= 400:
                raise call.status_failure(http, await _aread(http, call))
            if http.is_redirect:
                raise call.redirected(http)
            if not _is_sse(http):
                call.whole(await _aread(http, call))
                return
            reads = http.aiter_bytes()
            try:
                await _aread_events(call, reads)
            except httpx.ReadTimeout:
                raise call.stalled() from None
            except httpx.RequestError as e:  # dropped, reset, undecodable: the stream broke
                raise call.dropped(e) from None
            call.end_of_stream()
            await _drain(reads)
            return
        finally:
            await http.aclose()


async def _aread(http: httpx.Response, call: _Call) -> bytes:
    """The whole body; a connection that drops or stalls while it is read raises StreamError, not httpx's."""
    parts = []
    try:
        async for part in http.aiter_bytes():
            call.check_deadline()
            parts.append(part)
    except httpx.RequestError as e:
        raise call.cut_off(e) from None
    return b"".join(parts)


async def _drain(reads: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the body), briefly: httpx returns a connection to
    the pool only when its body was read to the end, so without this every call opens a new connection."""

    async def rest() -> None:
        async for _ in reads:
            pass

    started = time.monotonic()
    try:
        await asyncio.wait_for(rest(), DRAIN_S)
    except Exception as e:  # the connection is closed instead of reused: nothing the user lost
        log.debug("drain after [DONE] stopped (%s); the connection is closed, not reused", type(e).__name__)
    else:
        log.debug("drained the body after [DONE] in %.3f s", time.monotonic() - started)


# -- sync transport ----------------------------------------------------------------------------------------
_sync_clients: dict[tuple[str, str], httpx.Client] = {}


@atexit.register
def _close_sync_clients() -> None:
    """Close the kept-alive connections at exit instead of leaving open sockets to the interpreter's teardown."""
    for client in list(_sync_clients.values()):
        with contextlib.suppress(Exception):
            client.close()


def _sync_client(base_url: str, key: Secret | None) -> httpx.Client:
    """One Client per (base_url, key), shared by every sync call."""
    cache_key = (base_url, key.reveal() if key else "")
    client = _sync_clients.get(cache_key)
    if client is None or client.is_closed:
        client = httpx.Client(headers=_auth(key), limits=_limits())
        _sync_clients[cache_key] = client
    return client


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
    deadline: float | None = SESSION_DEFAULT,
    headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    cache: bool | None = None,
    schema: Any = None,
    max_steps: int = 8,
    confirm: Any = False,
    **call_params: Any,
) -> Response:
    """``achat`` for code that is not async, with the same arguments and behaviour.

    It needs no event loop, so it works in a notebook cell (where one is already running) without
    nest_asyncio. Ctrl-C or a kernel interrupt raises StoppedError whose ``.partial`` keeps what arrived.
    """
    if toolspec.runs_tools(call_params.get("tools")):
        return hooks.provided("tool_loop")(prompt_or_messages, **_own(locals()), **call_params)
    kw: dict[str, Any] = dict(
        model=model,
        system=system,
        stream=stream,
        base_url=base_url,
        api_key=api_key,
        on_event=on_event,
        timeout=timeout,
        headers=headers,
        extra_body=extra_body,
        call_params=call_params,
        deadline=deadline,
        cache=cache,
        schema=schema,
    )
    call = _Call(prompt_or_messages, **kw)
    try:
        return _call(call)
    except errors.InvalidParameterError as e:
        if not call.schema_refused(e):
            raise
    return _call(_Call(prompt_or_messages, **kw, fallback=True))


def _call(call: _Call) -> Response:
    """Run one call in this thread, its observers told however it ends."""
    try:
        _send(call)
    except KeyboardInterrupt:
        hooks.call_ended(call.stopped())
        raise errors.StoppedError(STOPPED, partial=call.response) from None
    except errors.WcodeError as e:
        call.failed(e)
        hooks.call_ended(call.response)
        raise
    else:
        hooks.call_ended(call.response)
    finally:
        budget.release(call.held)
    return call.response


def _serve(call: _Call) -> None:
    """``_aserve`` for the sync transport."""
    for at, data in call.served_answer():
        wait = call.served_wait(at)
        if wait:
            time.sleep(wait)
        call.check_deadline()
        if call.served_event(data):
            break
    call.served_end()


def _send(call: _Call) -> None:
    if call.served is not None:
        _serve(call)
        return
    client = _sync_client(call.base_url, call.key)
    while True:
        call.check_deadline()
        request = client.build_request("POST", call.url, json=call.body, headers=call.headers, timeout=call.timeout)
        try:
            http = client.send(request, stream=True)
        except _CONNECT_ERRORS as e:
            time.sleep(call.connect_retry(e))
            continue
        except httpx.TimeoutException:
            raise call.no_answer() from None
        except httpx.RequestError as e:  # a proxy or protocol failure no retry will mend
            raise call.unreachable(e) from None
        try:
            wait = call.status_retry(http)
            if wait is not None:
                with contextlib.suppress(httpx.RequestError):  # the error body is only discarded
                    http.read()
                time.sleep(wait)
                continue
            if http.status_code >= 400:
                raise call.status_failure(http, _read(http, call))
            if http.is_redirect:
                raise call.redirected(http)
            if not _is_sse(http):
                call.whole(_read(http, call))
                return
            reads = http.iter_bytes()
            try:
                _read_events(call, reads)
            except httpx.ReadTimeout:
                raise call.stalled() from None
            except httpx.RequestError as e:  # dropped, reset, undecodable: the stream broke
                raise call.dropped(e) from None
            call.end_of_stream()
            _drain_sync(http, reads)
            return
        finally:
            http.close()


def _read(http: httpx.Response, call: _Call) -> bytes:
    """``_aread`` for the sync transport."""
    parts = []
    try:
        for part in http.iter_bytes():
            call.check_deadline()
            parts.append(part)
    except httpx.RequestError as e:
        raise call.cut_off(e) from None
    return b"".join(parts)


def _drain_sync(http: httpx.Response, reads: Iterator[bytes]) -> None:
    """``_drain`` for the sync transport: read what follows ``[DONE]`` so httpx returns the connection to the pool.

    A blocking read cannot be cancelled, so the bound is twofold: each read waits at most DRAIN_S (httpcore reads
    the request's timeout extension on every body read) and reading stops once DRAIN_S has passed in all.
    """
    http.request.extensions["timeout"] = {**http.request.extensions.get("timeout", {}), "read": DRAIN_S}
    started = time.monotonic()
    try:
        for _ in reads:
            if time.monotonic() > started + DRAIN_S:
                log.debug("drain after [DONE] took over %.1f s; the connection is closed, not reused", DRAIN_S)
                return
    except Exception as e:
        log.debug("drain after [DONE] stopped (%s); the connection is closed, not reused", type(e).__name__)
    else:
        log.debug("drained the body after [DONE] in %.3f s", time.monotonic() - started)


# -- a private loop for sync helpers that run async work (sweeps) --------------------------------------------
class _LoopThread:
    """A private event loop in a daemon thread, for sync calls from code that may already run a loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="wcode-magic-loop", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def run(self, coro: Awaitable[T], on_interrupt: Callable[[], BaseException | None] | None = None) -> T:
        """Run ``coro`` to the end; on KeyboardInterrupt cancel it, give its clean-up a few seconds to finish (a
        sweep's stopped calls mark their Responses and keep them as rows), and raise what ``on_interrupt`` gives."""
        began, ended = threading.Event(), threading.Event()

        async def watched() -> T:
            began.set()
            try:
                return await coro
            finally:
                ended.set()

        here = errors.tasks_warn_here()  # the loop thread's warnings point at the caller's line (context copied)
        try:
            future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(watched(), self.loop())
        finally:
            errors.tasks_warn_reset(here)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # this future says cancelled at once; the coroutine's clean-up runs on after it
            if began.is_set():  # else it never ran: cancelled before its first step, nothing to wait for
                ended.wait(timeout=5)  # the stopped calls end together, each within DRAIN_S
            replacement = on_interrupt() if on_interrupt else None
            if replacement is not None:
                raise replacement from None
            raise

    def close(self) -> None:
        """At exit: shut down the loop's async generators (which closes its clients' connections), stop the
        loop and close it, so no socket or loop is left to the interpreter's teardown."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout=DRAIN_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=DRAIN_S)
        if not thread.is_alive():  # still busy with something that will not end: leave it to the teardown
            loop.close()


LOOP = _LoopThread()
atexit.register(LOOP.close)
