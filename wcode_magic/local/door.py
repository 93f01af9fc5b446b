"""The checks every request passes before the server reads it: who it is addressed to, and what it carries.

Why: the server listens on 127.0.0.1 of a machine where a browser runs, and a browser lets any web page send
"simple" cross-origin requests (``text/plain`` or form bodies need no CORS preflight) and, after DNS rebinding,
requests to its own name that arrive here. Without these checks a page could keep the model busy and the kernel's
own calls waiting. So:

- the ``Host`` header must name one of the hosts the server answers to (the loopback names; ``serve --host`` and
  ``--allow-host`` add more). A rebound page sends its own name, which is refused; the port is not checked,
  since it says nothing about who sent the request;
- a request with a body must say ``Content-Type: application/json``, which a page can only send after a CORS
  preflight that this server never grants.

Refusals are OpenAI-style JSON errors naming the header, the value and what is allowed, sent before the body is
read. Pure functions plus one small ASGI middleware; nothing here knows about chat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port, lower-cased, without a trailing dot (``[::1]:80`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal: [addr] or [addr]:port
        name = header[1 : header.find("]")] if "]" in header else header[1:]
    else:
        name = header.rpartition(":")[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def shown(host: str) -> str:
    """A host as written in a URL or a Host header (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def check_host(header: str | None, allowed: Iterable[str]) -> str | None:
    """Why a request with this ``Host`` header is refused, or None when it names an allowed host."""
    names = {host_name(name) for name in allowed}
    if header is not None and host_name(header) in names:
        return None
    listed = ", ".join(shown(n) for n in sorted(names))
    got = "no Host header" if header is None else f"Host {header!r}"
    return (
        f"{got} is not served here: this server answers only requests addressed to {listed} "
        "(start it with --allow-host NAME to add a name)"
    )


def check_content_type(method: str, header: str | None) -> str | None:
    """Why a request with this method and ``Content-Type`` is refused, or None (no body, or JSON)."""
    if method in _BODYLESS_METHODS:
        return None
    media_type = (header or "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        return None
    got = "no Content-Type" if header is None else f"Content-Type {header!r}"
    return (
        f"{got} is not accepted: send the JSON body with Content-Type: application/json "
        "(curl: -H 'Content-Type: application/json')"
    )


class Door:
    """ASGI middleware: refuses HTTP requests that fail :func:`check_host` or :func:`check_content_type`."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if reason := check_host(headers.get("host"), self.allowed_hosts):
            await _refuse(send, 400, reason, "Host")
        elif reason := check_content_type(scope["method"], headers.get("content-type")):
            await _refuse(send, 415, reason, "Content-Type")
        else:
            await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str, param: str) -> None:
    """An OpenAI-style error response, sent without reading the request's body."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": status}
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
