"""``wcode-magic`` as a user runs it: the real command line in a subprocess, talking to real sockets."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import wcode_magic

CLI = [sys.executable, "-m", "wcode_magic.cli"]
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/v1")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A ``serve`` process and the first line it printed; stopped (TERM) at the end if still running."""
    process = subprocess.Popen([*CLI, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process, process.stdout.readline()
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=20)


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"wcode-magic {wcode_magic.__version__}"


def assert_one_line(done: subprocess.CompletedProcess[str], status: int, *phrases: str) -> None:
    assert done.returncode == status, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wcode-magic serve: "), done.stderr
    assert all(p in lines[0] for p in phrases), lines[0]


def test_a_busy_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert_one_line(run("serve", "--port", port), 1, f"port {port} on 127.0.0.1 is already in use", "--port")


@pytest.mark.parametrize("port", ["abc", "70000", "65536", "-1", "80.5", ""])
def test_a_bad_port_is_one_line(port):
    assert_one_line(run("serve", "--port", port), 2, f"--port {port!r} is not a port number", "0 to 65535")


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        ("nosuch.invalid", "unknown host 'nosuch.invalid'"),  # .invalid never resolves (RFC 2606)
        ("not a host", "unknown host 'not a host'"),
        ("192.0.2.1", "'192.0.2.1' is not an address of this machine"),  # TEST-NET-1: nobody's address
    ],
)
def test_an_unknown_host_is_one_line(host, phrase):
    assert_one_line(run("serve", "--host", host, "--port", "0"), 1, phrase, "127.0.0.1")


def test_the_url_is_printed_once_the_port_accepts_connections():
    for _ in range(3):  # the race it had was 12-30 ms wide: every attempt would have lost it
        with serving("--port", "0") as (_, line):
            port = int(URL.search(line).group(1))
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # at once: no retry, no sleep
            assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_term_stops_cleanly(signum):
    with serving("--port", "0") as (process, line):
        port = int(URL.search(line).group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).is_success
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0 and stderr == "", stderr
    assert stdout.strip() == "wcode-magic local model: stopped."


def test_serve_answers_the_loopback_names_its_host_and_allowed_names_only():
    with serving("--port", "0", "--host", "localhost", "--allow-host", "lan-box") as (_, line):
        url = URL.search(line).group() + "/models"
        for host, status in (("localhost", 200), ("127.0.0.1", 200), ("lan-box:80", 200), ("evil.example", 400)):
            assert httpx.get(url, headers={"Host": host}, timeout=10).status_code == status, host


def test_ctrl_c_ends_an_answer_still_streaming_quietly():
    """A stalled stream (test mode) would hold a graceful shutdown for its whole stall; Ctrl-C ends it at once."""
    with serving("--port", "0", "--test-mode") as (process, line):
        url = URL.search(line).group() + "/chat/completions"
        payload = {"model": "local/ngram", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"X-Wcode-Fault": "stall_after=2,stall_s=60"}
        with httpx.stream("POST", url, json=payload, headers=headers, timeout=90) as response:
            next(response.iter_raw())  # the stream has started: it is in flight
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 30  # the stall would have lasted 60 s
    assert process.returncode == 0 and stderr == "", stderr
    assert stdout.strip() == "wcode-magic local model: stopped."
