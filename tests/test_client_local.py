"""wm.chat and wm.achat against the bundled local model over real HTTP: every model id, streamed and not,
retries, and every injected fault raising the right exception with the partial answer kept."""

from __future__ import annotations

import asyncio
import contextlib
import linecache
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from urllib.parse import urlsplit

import pytest

import wcode_magic as wm
from wcode_magic.core import errors

LOCAL_IDS = ["local/ngram", "local/ngram-thinking", "local/ngram-thinking-rc"]


def fault(spec: str, key: str | None = None) -> dict[str, str]:
    headers = {"X-Wcode-Fault": spec}
    if key:
        headers["X-Wcode-Fault-Key"] = key
    return headers


@pytest.fixture
def fast_retries(session):
    wm.configure(max_retries=2, retry_cap_s=1.0)
    return session


@pytest.mark.parametrize("model", LOCAL_IDS)
@pytest.mark.parametrize("stream", [True, False])
def test_every_local_model_streamed_and_not(local_url, session, model, stream):
    events = []
    r = wm.chat(
        "Tell me about the weather",
        model=model,
        base_url=local_url,
        stream=stream,
        seed=3,
        max_tokens=80,  # the whole completion: up to 48 of thinking (medium effort), the rest answer
        on_event=events.append,
    )
    assert r.complete and r.text.strip()
    assert r.usage.completion_tokens and r.usage.prompt_tokens
    if model == "local/ngram":
        assert r.reasoning == "" and not r.usage.reasoning_tokens
    else:
        assert r.reasoning.strip() and r.usage.reasoning_tokens
        kinds = [e.kind for e in events]
        assert kinds.index("reasoning") < kinds.index("content")
    assert r.cost == 0.0


def test_streamed_and_whole_answers_agree(local_url, session):
    a = wm.chat("Cooking rice", model="local/ngram-thinking-rc", base_url=local_url, seed=11, max_tokens=25)
    b = wm.chat(
        "Cooking rice", model="local/ngram-thinking-rc", base_url=local_url, seed=11, max_tokens=25, stream=False
    )
    assert (a.text, a.reasoning) == (b.text, b.reasoning)
    assert a.usage.completion_tokens == b.usage.completion_tokens


def test_local_model_id_starts_the_server_by_itself(session):
    r = wm.chat("hello", model="local", max_tokens=5)
    assert r.complete and r.base_url.startswith("http://127.0.0.1:")


def test_thinking_switch(local_url, session):
    off = wm.chat("birds", model="local/ngram-thinking", base_url=local_url, reasoning=False, max_tokens=10)
    assert off.reasoning == "" and off.text
    short = wm.chat(
        "birds", model="local/ngram-thinking", base_url=local_url, reasoning={"max_tokens": 5}, max_tokens=10
    )
    assert 0 < short.usage.reasoning_tokens <= 5


def test_logprobs_are_real(local_url, session):
    r = wm.chat(
        "the history of computing",
        model="local/ngram",
        base_url=local_url,
        logprobs=True,
        top_logprobs=5,
        max_tokens=20,
        seed=2,
    )
    assert r.logprobs_status == "sent"
    assert len(r.logprobs) == r.usage.completion_tokens
    assert "".join(e["token"] for e in r.logprobs) == r.text
    for e in r.logprobs:
        assert e["logprob"] <= 0 and len(e["top_logprobs"]) == 5


@pytest.mark.parametrize(
    "status,exc",
    [
        (401, errors.AuthenticationError),
        (402, errors.InsufficientCreditError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (408, errors.ServerError),
        (422, errors.InvalidParameterError),
        (429, errors.RateLimitError),
        (500, errors.ServerError),
        (502, errors.ServerError),
        (503, errors.ServerError),
    ],
)
def test_status_faults(local_url, fast_retries, status, exc):
    with pytest.raises(exc) as info:
        wm.chat("hi", model="local", base_url=local_url, headers=fault(f"status={status}"))
    message = info.value.message
    assert info.value.status == status
    assert "Traceback" not in message
    # the server's words end in a full stop before our own sentence (or the end of the message)
    assert "(injected by X-Wcode-Fault). " in message or message.endswith("(injected by X-Wcode-Fault).")
    assert "..  " not in message and ".." not in message.replace("...", "")


def test_408_after_retries_says_what_to_do(local_url, fast_retries):
    with pytest.raises(errors.ServerError) as info:
        wm.chat("hi", model="local", base_url=local_url, headers=fault("status=408"))
    assert info.value.message.startswith("HTTP 408: the request timed out at the server, still after retries.")
    assert "Try again" in info.value.message and "max_tokens" in info.value.message


def test_403_moderation_is_not_worded_as_a_bad_key(local_url, fast_retries):
    with pytest.raises(errors.AuthenticationError) as info:
        wm.chat("hi", model="local", base_url=local_url, headers=fault("status=403"))
    message = info.value.message
    assert "flagged by moderation" in message and "refused" in message
    assert "API key was refused" not in message and "or is missing" not in message
    assert "change the input" in message


def test_a_sub_second_wait_is_shown_with_a_decimal(local_url, fast_retries):
    with pytest.raises(errors.RateLimitError) as info:
        wm.chat("hi", model="local", base_url=local_url, headers=fault("status=429,retry_after=0.3"))
    assert info.value.retry_after == pytest.approx(0.3) and "wait 0.3 s" in info.value.message


@pytest.mark.parametrize("status", [401, 500])
def test_error_before_the_stream_marks_the_response_error(local_url, fast_retries, status):
    key = "sk-never-shown-0123456789"
    with pytest.raises(errors.WcodeError) as info:
        wm.chat("hi", model="local", base_url=local_url, api_key=key, headers=fault(f"status={status}"))
    r = wm.last()
    assert r.status == "error" and not r.complete and not r.stopped
    assert r.error["message"] == info.value.message == str(info.value) and r.error["code"] == status
    assert r.raw["error"] == r.error and "ERROR" in r.footer()
    assert key not in repr(r.raw) and key not in repr(r)


def test_unreachable_server_marks_the_response_error(fast_retries):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.APIConnectionError) as info:
        wm.chat("hi", model="local", base_url=f"http://127.0.0.1:{port}/v1")
    assert wm.last().status == "error" and wm.last().error["message"] == str(info.value)


def test_rate_limit_reports_the_wait_asked_for(local_url, fast_retries):
    t = time.monotonic()
    with pytest.raises(errors.RateLimitError) as info:
        wm.chat("hi", model="local", base_url=local_url, headers=fault("status=429,retry_after=1"))
    assert info.value.retry_after == pytest.approx(1, abs=0.5)
    assert "wait 1 s" in info.value.message
    assert time.monotonic() - t >= 2 * 0.9  # two retries, each honouring Retry-After (capped at 1 s here)


@pytest.mark.parametrize(
    "spec", ["status=429,retry_after=0", "status=503", "status=500", "status=429,retry_after_date"]
)
def test_retries_then_succeeds(local_url, fast_retries, spec):
    key = f"retry-{spec}-{time.monotonic()}"
    r = wm.chat("hi", model="local", base_url=local_url, max_tokens=5, headers=fault(f"{spec},times=2", key))
    assert r.complete


def test_connection_refused_after_retries(fast_retries):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.APIConnectionError, match="Could not reach"):
        wm.chat("hi", model="local", base_url=f"http://127.0.0.1:{port}/v1")


def test_error_event_mid_stream_keeps_partial(local_url, session):
    with pytest.raises(errors.StreamError) as info:
        wm.chat("hi", model="local/ngram-thinking", base_url=local_url, max_tokens=50, headers=fault("error_after=5"))
    p = info.value.partial
    assert p.reasoning and p.text and not p.complete and p.status == "error"
    assert wm.last() is p


def test_dropped_connection_keeps_partial(local_url, session):
    with pytest.raises(errors.StreamError, match=r"dropped|without \[DONE\]") as info:
        wm.chat("hi", model="local", base_url=local_url, max_tokens=50, headers=fault("drop_after=5"))
    assert info.value.partial.text and not info.value.partial.complete


@pytest.mark.parametrize("use_async", [False, True])
def test_dropped_connection_of_a_whole_answer_is_a_wcode_error(local_url, session, use_async):
    kw = dict(model="local", base_url=local_url, max_tokens=50, stream=False, headers=fault("drop_after=5"))
    with pytest.raises(errors.StreamError, match="connection dropped") as info:
        if use_async:
            asyncio.run(wm.achat("hi", **kw))
        else:
            wm.chat("hi", **kw)
    assert "Run again" in info.value.message
    r = wm.last()
    assert not r.complete and r.status == "incomplete" and info.value.partial is r


@pytest.mark.parametrize("prompt", [123, None, {"role": "user", "content": "hi"}, ["hi"], [{"role": "user"}, 5]])
def test_a_prompt_of_the_wrong_type_is_rejected_before_sending(local_url, session, prompt):
    with pytest.raises(errors.InvalidParameterError, match="prompt") as info:
        wm.chat(prompt, model="local", base_url=local_url)
    assert "a string or a list of message dicts" in info.value.message


@pytest.mark.parametrize("timeout", [-1, 0, "10", float("nan"), True])
def test_a_bad_timeout_is_rejected_before_sending(local_url, session, timeout):
    with pytest.raises(errors.InvalidParameterError, match="timeout") as info:
        wm.chat("hi", model="local", base_url=local_url, timeout=timeout)
    assert info.value.param == "timeout" and "a number of seconds from 0.1 to 3600" in info.value.message


BAD_URLS = [
    "not a url",
    "ftp://example.com/v1",
    "localhost:8000/v1",
    "http://",
    123,
    "http://[::1/v1",  # urlsplit: ValueError
    "http://a..b/v1",  # an empty label: UnicodeError at lookup
    "http://xn--/v1",  # idna: IDNAError
    "http://a\x01b/v1",  # httpx: InvalidURL
    "http://\u00e9x\x00.com/v1",
]


@pytest.mark.parametrize("base_url", BAD_URLS)
def test_a_bad_base_url_is_rejected_before_sending(session, base_url):
    with pytest.raises(errors.InvalidParameterError, match="base_url") as info:
        wm.chat("hi", model="local", base_url=base_url)
    assert info.value.param == "base_url" and "http:// or https:// URL" in info.value.message
    assert info.value.value == base_url


@pytest.mark.parametrize("base_url", BAD_URLS[5:])
def test_a_base_url_python_or_httpx_cannot_read_is_named_everywhere(session, base_url):
    """Every door to the session refuses it (configure, SESSION.update, assignment) and leaves the session as it
    was; per call, wm.chat and wm.compare name it before sending."""

    def assign():
        session.base_url = base_url

    for door in (lambda: wm.configure(base_url=base_url), lambda: session.update(base_url=base_url), assign):
        with pytest.raises(errors.InvalidParameterError, match="base_url") as info:
            door()
        assert info.value.value == base_url and session.base_url is None
    with pytest.raises(errors.InvalidParameterError, match="base_url") as info:
        wm.chat("hi", model="local", base_url=base_url)
    assert info.value.param == "base_url"
    frame = wm.compare("hi", models=["local"], max_tokens=3, base_url=base_url)
    assert "base_url" in frame["error"].iloc[0]


@pytest.mark.parametrize(
    "setting,value",
    [
        ("base_url", 123),
        ("base_url", "not a url"),
        ("model", 5),
        ("system", ["be brief"]),
        ("api_key", 42),
        ("gap_timeout", -1),
        ("connect_timeout", "10"),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("retry_cap_s", -2),
        ("history", "yes"),
    ],
)
def test_configure_rejects_wrong_types_and_values(session, setting, value):
    before = {k: getattr(session, k) for k in ("model", "base_url", "system", "api_key", "gap_timeout")}
    with pytest.raises(errors.InvalidParameterError, match=setting) as info:
        wm.configure(**{setting: value}, temperature=0.5)
    assert info.value.param == setting
    assert {k: getattr(session, k) for k in before} == before and "temperature" not in session.params


def test_configure_suggests_settings_and_accepts_good_values(session):
    with pytest.raises(errors.InvalidParameterError, match="Did you mean 'base_url'"):
        wm.configure(base_ulr="http://127.0.0.1:1/v1")
    wm.configure(base_url="http://127.0.0.1:1/v1/", gap_timeout=5, max_retries=0, history=False, api_key=None)
    assert session.base_url == "http://127.0.0.1:1/v1" and session.gap_timeout == 5
    wm.configure(base_url=None)
    assert session.base_url is None


def test_a_bad_wcode_base_url_variable_is_named_at_call_time(session, monkeypatch):
    monkeypatch.setenv("WCODE_BASE_URL", "localhost:8000")
    with pytest.raises(errors.InvalidParameterError, match="WCODE_BASE_URL='localhost:8000'"):
        wm.chat("hi", model="r1", api_key="sk-test-key-000000")


def test_malformed_event(local_url, session):
    with pytest.raises(errors.StreamError, match="malformed") as info:
        wm.chat("hi", model="local", base_url=local_url, max_tokens=50, headers=fault("malformed_after=3"))
    assert info.value.partial.text


def test_stall_fails_after_the_gap_timeout(local_url, session):
    t = time.monotonic()
    with pytest.raises(errors.StreamError, match="stalled") as info:
        wm.chat(
            "hi",
            model="local",
            base_url=local_url,
            max_tokens=50,
            timeout=1.0,
            headers=fault("stall_after=4,stall_s=30"),
        )
    assert time.monotonic() - t < 10
    assert info.value.partial.text


def test_keepalive_comments_are_skipped(local_url, session):
    plain = wm.chat("rain", model="local/ngram-thinking", base_url=local_url, seed=5, max_tokens=15)
    noisy = wm.chat(
        "rain", model="local/ngram-thinking", base_url=local_url, seed=5, max_tokens=15, headers=fault("keepalive")
    )
    assert (noisy.text, noisy.reasoning) == (plain.text, plain.reasoning)


def test_inline_think_tags_from_the_server(local_url, session):
    r = wm.chat("rain", model="local/ngram", base_url=local_url, seed=5, max_tokens=15, headers=fault("think_inline"))
    assert r.reasoning and "<think>" not in r.text and "</think>" not in r.text


def test_achat_concurrently_and_cancelled_keeps_partial(local_url, session):
    async def main():
        events = []
        task = asyncio.create_task(
            wm.achat(
                "long",
                model="local/ngram-thinking",
                base_url=local_url,
                max_tokens=2000,
                extra_body={"ignore_eos": True},
                headers=fault("stall_after=20,stall_s=30"),
                on_event=events.append,
            )
        )
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        partial = events[0].value
        many = await asyncio.gather(
            *(wm.achat(f"q{i}", model="local", base_url=local_url, max_tokens=5) for i in range(6))
        )
        return partial, many

    partial, many = asyncio.run(main())
    assert partial.stopped and partial.status == "stopped" and (partial.reasoning or partial.text)
    assert all(r.complete for r in many)


def _at_call_site(caught: list[warnings.WarningMessage], call: str) -> list[str]:
    """Our warnings, each checked to point at this file on the line that makes the call."""
    ours = [w for w in caught if issubclass(w.category, wm.WcodeWarning)]
    for w in ours:
        assert w.filename == __file__, (w.filename, w.lineno, str(w.message))
        assert call in linecache.getline(w.filename, w.lineno), (w.lineno, str(w.message))
    return [str(w.message) for w in ours]


def test_parameter_warnings_point_at_the_chat_line(local_url, session):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = wm.chat("hi", model="local/ngram", base_url=local_url, reasoning=True, max_tokens=5)
        with pytest.raises(errors.NotFoundError):  # the local server does not serve r1; the warning comes first
            wm.chat("hi", model="r1", base_url=local_url, temperature=0.3)
    assert r.complete
    said = _at_call_site(caught, "wm.chat(")
    assert len(said) == 2 and "cannot switch its thinking" in said[0] and "ignores temperature" in said[1]


def test_parameter_warnings_point_at_the_achat_line(local_url, session):
    async def main():
        r = await wm.achat("hi", model="local/ngram", base_url=local_url, reasoning=True, max_tokens=5)
        with pytest.raises(errors.NotFoundError):
            await wm.achat("hi", model="r1", base_url=local_url, temperature=0.3)
        return r

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = asyncio.run(main())
    assert r.complete
    said = _at_call_site(caught, "await wm.achat(")
    assert len(said) == 2 and "cannot switch its thinking" in said[0] and "ignores temperature" in said[1]


class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of a server, counting the connections clients open through it."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}{target.path}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy(local_url):
    relay = CountingProxy(local_url)
    yield relay
    relay.close()


@pytest.mark.parametrize("stream", [True, False])
def test_sequential_chats_reuse_one_connection(proxy, session, stream):
    for prompt in ("first", "second", "third"):
        r = wm.chat(  # max_tokens counts the thinking too: a thinking budget leaves room for an answer
            prompt,
            model="local/ngram-thinking",
            base_url=proxy.base_url,
            max_tokens=8,
            reasoning={"max_tokens": 3},
            stream=stream,
        )
        assert r.reasoning
        assert r.complete and r.text
    assert proxy.connections == 1


def test_sequential_achats_reuse_one_connection(proxy, session):
    async def main():
        return [await wm.achat(p, model="local", base_url=proxy.base_url, max_tokens=8) for p in ("a", "b", "c")]

    assert all(r.complete for r in asyncio.run(main()))
    assert proxy.connections == 1


def _endless_body_server(stop: threading.Event) -> str:
    """A raw HTTP server that answers one chat with [DONE] but then never ends the body (it keeps sending
    comments), as a misbehaving proxy might: the client must stop reading after [DONE] by itself."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(
                next(
                    v for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            chunk = b'data: {"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
            events = [chunk, b"data: [DONE]\n\n"]
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for data in events:
                conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            with contextlib.suppress(OSError):
                while not stop.wait(0.05):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(b": ping\n\n"), b": ping\n\n"))

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def test_draining_after_done_is_bounded_when_the_body_never_ends(session):
    stop = threading.Event()
    url = _endless_body_server(stop)
    got: list = []
    caller = threading.Thread(target=lambda: got.append(wm.chat("hi", model="m", base_url=url, timeout=600)))
    caller.start()
    caller.join(timeout=120)  # a hang detector, not a speed check: unbounded draining would never return
    stop.set()
    assert not caller.is_alive() and got and got[0].complete and got[0].text == "hi"


def test_cancel_while_reading_past_done_keeps_the_answer_complete(session):
    """The answer is whole once [DONE] arrived: a cancel during the short read that follows loses nothing."""
    stop = threading.Event()
    url = _endless_body_server(stop)
    started: list = []

    async def main():
        task = asyncio.ensure_future(wm.achat("hi", model="m", base_url=url, on_event=started.append))
        while not (started and started[0].value.complete):
            await asyncio.sleep(0.01)
        task.cancel()  # the client is now draining the body that never ends
        with pytest.raises(asyncio.CancelledError):
            await task
        return started[0].value

    r = asyncio.run(main())
    stop.set()
    assert r.complete and not r.stopped and r.status == "done" and r.text == "hi"
    assert wm.last() is r


def test_asyncio_run_and_sweeps_close_their_connections(local_url):
    """Each asyncio.run gets its own clients and closes them as the loop shuts down; the sweeps' private loop
    closes its own at exit; wm.chat's too: no unclosed socket or loop, even under -X dev."""
    script = f"""
import asyncio, gc
import wcode_magic as wm
for _ in range(3):
    r = asyncio.run(wm.achat("hi", model="local/ngram", base_url={local_url!r}, max_tokens=4))
    assert r.complete
assert len(wm.batch(["a", "b", "c"], model="local/ngram", base_url={local_url!r}, max_tokens=4, progress=False)) == 3
assert wm.chat("hi", model="local/ngram", base_url={local_url!r}, max_tokens=4).complete
gc.collect()
print("ok")
"""
    env = {**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"}
    run = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    assert "unclosed" not in run.stderr.lower(), run.stderr


def test_loops_closed_without_shutdown_do_not_pile_up(local_url, session):
    """run_until_complete then close (no shutdown_asyncgens): the next loop's first call drops their clients."""
    from wcode_magic.core import client

    for _ in range(3):
        loop = asyncio.new_event_loop()
        try:
            r = loop.run_until_complete(wm.achat("hi", model="local/ngram", base_url=local_url, max_tokens=4))
            assert r.complete
        finally:
            loop.close()
    closed = [loop for loop in client._loop_clients if loop.is_closed()]
    assert len(closed) <= 1  # only the last one, until another loop makes a call
    asyncio.run(wm.achat("hi", model="local/ngram", base_url=local_url, max_tokens=4))
    assert not [loop for loop in client._loop_clients if loop.is_closed()]
