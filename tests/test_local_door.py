"""The local server's door over real HTTP: what a web page in the user's browser could send is refused before the
server reads it, a long whole answer does not hold up other requests, and the client's limits hold on the server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from wcode_magic import local
from wcode_magic.core import params
from wcode_magic.core.errors import InvalidParameterError
from wcode_magic.local import chat
from wcode_magic.local.door import check_content_type, check_host, host_name

PAYLOAD = {"model": "local/ngram", "messages": [{"role": "user", "content": "Tell me about the weather"}]}


@pytest.fixture(scope="module")
def http(local_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_url, timeout=30) as client:
        yield client


def port_of(url: str) -> int:
    return urlsplit(url).port


# --- Content-Type -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # a page's fetch() or <form enctype="text/plain"> with a JSON-looking body: no preflight
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",  # a plain <form>, and curl -d without -H
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
    ],
)
def test_a_body_that_is_not_declared_json_is_415_before_anything_else(http, content_type):
    headers = {"X-Wcode-Fault": "status=500"}  # the door comes before the fault injection and the model
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = http.post("/chat/completions", content=json.dumps(PAYLOAD).encode(), headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["param"] == "Content-Type" and error["type"] == "invalid_request_error"
    assert "application/json" in error["message"]
    assert (content_type or "no Content-Type") in error["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_bodies_are_served(http, content_type):
    payload = {**PAYLOAD, "max_tokens": 3}
    response = http.post("/chat/completions", content=json.dumps(payload), headers={"Content-Type": content_type})
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] <= 3


# --- Host -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io:{port}", "0.0.0.0", ""],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/models"), ("POST", "/chat/completions")])
def test_a_host_the_server_does_not_answer_to_is_400(http, local_url, host, method, path):
    host = host.format(port=port_of(local_url))
    response = http.request(method, path, json=PAYLOAD, headers={"Host": host})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "Host" and repr(host) in error["message"]
    assert all(name in error["message"] for name in ("localhost", "127.0.0.1", "[::1]", "--allow-host"))


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST", "127.0.0.1", "[::1]:{port}", "localhost."])
def test_loopback_names_are_served(http, local_url, host):
    response = http.get("/models", headers={"Host": host.format(port=port_of(local_url))})
    assert response.status_code == 200 and response.json()["data"]


def test_a_request_without_a_host_header_is_refused(local_url):
    with socket.create_connection(("127.0.0.1", port_of(local_url)), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")  # HTTP/1.0 may omit Host; HTTP/1.1 may not
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(payload)["error"]["param"] == "Host"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8000", "localhost"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("Host.Example.", "host.example"),
    ],
)
def test_host_name_drops_the_port_and_brackets(header, name):
    assert host_name(header) == name


def test_the_pure_checks_agree_with_the_wire():
    assert check_host("localhost:1", local.LOOPBACK_HOSTS) is None
    assert check_host(None, local.LOOPBACK_HOSTS) and check_host("a.example", local.LOOPBACK_HOSTS)
    assert check_host("lan-box:8000", ("lan-box",)) is None  # serve --allow-host adds names
    assert check_content_type("GET", None) is None and check_content_type("POST", "application/json") is None
    assert check_content_type("PUT", "text/plain") and check_content_type("POST", None)


# --- generation off the event loop ------------------------------------------------------------------------------


SLOW = {
    **PAYLOAD,
    "max_tokens": 12_000,
    "ignore_eos": True,
    "presence_penalty": 1.0,
    "logprobs": True,
    "top_logprobs": 20,
}


def test_a_long_whole_answer_does_not_hold_up_other_requests(local_url):
    """A non-streamed answer of 12,000 tokens with 20 alternatives each takes seconds to compute (a presence
    penalty makes each step depend on the history, so no cache helps; without the alternatives it took under half
    a second on a fast machine) and little time to send. Computed in the event loop, it kept every other request
    waiting until it was done; now the others finish first."""
    slow = SLOW
    finished: list[str] = []

    async def post(client: httpx.AsyncClient, name: str, payload: dict[str, Any]) -> httpx.Response:
        response = await client.post("/chat/completions", json=payload)
        finished.append(name)
        return response

    async def main() -> None:
        async with httpx.AsyncClient(base_url=local_url, timeout=120) as client:
            long = asyncio.create_task(post(client, "long", slow))
            await asyncio.sleep(0.5)  # the long answer is being generated
            assert not long.done(), "the long answer must still be running for this test to mean anything"
            short = await post(client, "short", {**PAYLOAD, "max_tokens": 3})
            streamed = await post(client, "stream", {**PAYLOAD, "max_tokens": 3, "stream": True})
            models = await client.get("/models")
            finished.append("models")
            assert short.status_code == streamed.status_code == models.status_code == 200
            assert (await long).json()["usage"]["completion_tokens"] == 12_000

    asyncio.run(main())
    assert finished == ["short", "stream", "models", "long"]


def test_a_whole_answer_stops_when_its_client_leaves(local_url, caplog):
    """A client that gives up (a stopped ``wm.chat(stream=False)``, a read timeout) must not leave the model
    computing the rest of a 12,000-token answer on the machine's few cores."""
    with caplog.at_level(logging.INFO, logger="wcode_magic.local"):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{local_url}/chat/completions", json=SLOW, timeout=httpx.Timeout(30, read=0.3))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _stopped(caplog.records):
            time.sleep(0.05)
    stopped = _stopped(caplog.records)
    assert stopped, "the server went on computing the answer after its client left"
    drawn = int(stopped[0].args[0])
    assert 0 < drawn < 12_000


def _stopped(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "wcode_magic.local" and "client left" in r.getMessage()]


# --- the client's limits, on the server too ---------------------------------------------------------------------


def test_the_client_and_the_server_share_the_limit_on_stop_strings(http):
    limit = local.MAX_STOP_STRINGS
    allowed, too_many = [f"#{i}" for i in range(limit)], [f"#{i}" for i in range(limit + 1)]
    assert params.validate({"stop": allowed}) == {"stop": allowed}
    assert http.post("/chat/completions", json={**PAYLOAD, "stop": allowed, "max_tokens": 3}).status_code == 200
    for bad in (too_many, [], "", ["ok", ""], ["ok", 3]):
        with pytest.raises(InvalidParameterError):
            params.validate({"stop": bad})
        response = http.post("/chat/completions", json={**PAYLOAD, "stop": bad, "max_tokens": 3})
        error = response.json()["error"]
        assert response.status_code == 400 and error["param"] == "stop", bad
        assert f"1 to {limit} non-empty strings" in error["message"] and repr(bad) in error["message"]


def test_the_client_and_the_server_share_the_limit_on_top_logprobs(http):
    limit = local.MAX_TOP_LOGPROBS
    assert params.PARAMS["top_logprobs"].max == limit
    for n, status in ((limit, 200), (limit + 1, 400)):
        response = http.post(
            "/chat/completions", json={**PAYLOAD, "logprobs": True, "top_logprobs": n, "max_tokens": 2}
        )
        assert response.status_code == status


def test_the_numeric_ranges_are_the_client_ones():
    """The server declares its ranges apart (local/ imports nothing from the package); they must match."""
    for name, (low, high, integer, default) in chat._RANGES.items():
        declared = params.PARAMS[name]
        assert (declared.min, declared.max if declared.max is not None else float("inf")) == (low, high), name
        assert (declared.kind == "int") == integer and declared.default == default, name


@pytest.mark.parametrize(
    "reasoning",
    [{"max_tokens": 0}, {"max_tokens": 2.5}, {"enabled": "yes"}, {"exclude": 1}, {"effort": "max"}, "on"],
)
def test_a_reasoning_object_the_client_refuses_is_400_on_the_server(http, reasoning):
    with pytest.raises(InvalidParameterError):
        params.validate({"reasoning": reasoning})
    payload = {**PAYLOAD, "model": "local/ngram-thinking", "reasoning": reasoning, "max_tokens": 3}
    response = http.post("/chat/completions", json=payload)
    assert response.status_code == 400 and response.json()["error"]["param"] == "reasoning"
