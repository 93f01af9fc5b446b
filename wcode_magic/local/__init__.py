"""The bundled offline model: an OpenAI-compatible server on 127.0.0.1, backed by a small trigram model.

Why in-process: notebooks on Binder, in a classroom or in CI have no API key; ``start()`` gives them a real HTTP
endpoint in a background thread, so every client path (streaming, reasoning dialects, logprobs, retries) runs for
real. It never pretends to be wcode: the model ids are ``local/...``.

Importing this module is cheap; uvicorn, starlette and numpy are imported by :func:`start`.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from typing import Any

__all__ = [
    "CONTEXT_TOKENS",
    "LOOPBACK_HOSTS",
    "MAX_STOP_STRINGS",
    "MAX_TOP_LOGPROBS",
    "MODEL_IDS",
    "base_url",
    "base_urls",
    "bind",
    "start",
    "start_for",
    "stop",
    "url_for",
]

MODEL_IDS = ("local/ngram", "local/ngram-thinking", "local/ngram-thinking-rc")
# The context length of the local models: prompt tokens + max_tokens may not exceed it (the server answers 400).
# A trigram model only ever looks at the last two tokens, so this is not what the model can use but what the
# server accepts; the catalog reads the same constant, so the two cannot disagree.
CONTEXT_TOKENS = 1_000_000
# Request limits the server enforces and the client's parameter checks import (core/params.py), so a request the
# client lets through is one the server accepts, and the server refuses what a hand-made request gets wrong.
MAX_STOP_STRINGS = 4  # OpenAI's limit; the seed pages' stop array
MAX_TOP_LOGPROBS = 20  # the seed pages' top_logprobs range, 0..20
# The names the server answers to in the Host header (more with serve's --host/--allow-host): a web page whose
# own name was rebound to 127.0.0.1 sends its name, not these, so it cannot reach the model through the browser.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
TEST_MODE_ENV = "WCODE_LOCAL_TEST_MODE"
_STARTUP_TIMEOUT_S = 15.0

_lock = threading.Lock()
_server: Any = None
_thread: threading.Thread | None = None
_app: Any = None
_base_url: str | None = None


def start(*, port: int | None = None, test_mode: bool | None = None) -> str:
    """Start the local server once per process and return its base URL, ending in ``/v1``.

    ``port=None`` picks a free port. ``test_mode=None`` reads ``WCODE_LOCAL_TEST_MODE`` ("1" = on). A second call
    returns the running server's URL (whatever ``port``), and may switch test mode on (never off, so one caller
    cannot break another's fault tests). The server stops at interpreter exit.
    """
    global _server, _thread, _app, _base_url
    if test_mode is None:
        test_mode = os.environ.get(TEST_MODE_ENV) == "1"
    with _lock:
        if _base_url is not None:
            _app.state.test_mode = _app.state.test_mode or test_mode
            return _base_url
        import uvicorn

        from .ngram import default_model
        from .server import create_app

        default_model()  # train now (~0.1 s), not during the first request
        sock = bind("127.0.0.1", port or 0)
        app = create_app(test_mode=test_mode, allowed_hosts=LOOPBACK_HOSTS)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="wcode-local", daemon=True)
        thread.start()
        _wait_started(server, thread)
        _server, _thread, _app = server, thread, app
        _base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        atexit.unregister(stop)
        atexit.register(stop)
        return _base_url


def stop() -> None:
    """Stop the server if it runs (idempotent); a later :func:`start` starts a new one."""
    global _server, _thread, _app, _base_url
    with _lock:
        server, thread = _server, _thread
        _server = _thread = _app = _base_url = None
    if server is not None:
        server.should_exit = True
    if thread is not None:
        thread.join(timeout=5)


def base_url() -> str | None:
    """The running server's base URL, or None."""
    return _base_url


def start_for(model_id: str) -> str:
    """The base URL of the in-process server for a local model (started if needed): llama.cpp's for the
    transformer (``local/gemma-270m``, the optional extra: local/llama.py), the n-gram server for the others."""
    from . import llama

    return llama.start() if model_id == llama.MODEL_ID else start()


def url_for(model_id: str) -> str | None:
    """The running in-process server's base URL for a local model, or None when it is not running."""
    from . import llama

    return llama.base_url() if model_id == llama.MODEL_ID else _base_url


def base_urls() -> tuple[str, ...]:
    """The base URLs of the in-process servers running now (the n-gram one, llama.cpp's)."""
    from . import llama

    return tuple(url for url in (_base_url, llama.base_url()) if url is not None)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host`` (a name or an IPv4/IPv6 address) and ``port`` (0: a free one).

    Bound before uvicorn starts, so the port is known and cannot be taken in between. Raises ``OSError``
    (``socket.gaierror`` for a name that does not resolve, ``EADDRINUSE`` for a busy port) and ``ValueError`` for
    a port outside 0..65535 (checked here: getaddrinfo silently wraps 70000 to 4464); ``wcode-magic serve`` turns
    each into one line.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose proto says TCP;
    # without it every answer on a kept-alive connection waited ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _wait_started(server: Any, thread: threading.Thread) -> None:
    """Block until uvicorn accepts connections (so the first request cannot race the startup)."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the local model server did not start; see the uvicorn log above")
        time.sleep(0.005)
