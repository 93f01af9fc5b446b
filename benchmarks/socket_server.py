"""The benchmarks' HTTP/1.1 server on a plain socket, in a subprocess of its own.

Why not the bundled local server (or any framework): a benchmark of the client must not measure the server. A
plain socket server in another process (so it does not share the client's GIL) reads each request and lets the
benchmark's ``answer(conn, request, headers)`` write pre-built bytes back, one ``sendall`` per event, as real
servers send tokens. A benchmark's server script defines ``answer`` and ends with
``serve_forever(answer, int(sys.argv[1]))``; ``start(script, *args)`` runs it on a free port (this folder is its
working directory, so the script can import this module) and returns the process and its base URL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Answer = Callable[[socket.socket, dict[str, Any], dict[bytes, bytes]], None]


def serve_forever(answer: Answer, port: int, backlog: int = 256) -> None:
    """Accept connections on 127.0.0.1:``port`` forever, one thread each, keep-alive requests one after another."""
    listener = socket.create_server(("127.0.0.1", port), backlog=backlog)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(conn, answer), daemon=True).start()


def _serve(conn: socket.socket, answer: Answer) -> None:
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                more = conn.recv(65536)
                if not more:
                    return
                buf += more
            head, _, buf = buf.partition(b"\r\n\r\n")
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", 0))
            while len(buf) < length:
                buf += conn.recv(65536)
            raw, buf = buf[:length], buf[length:]
            answer(conn, json.loads(raw), headers)


def start(script: str, *args: str) -> tuple[subprocess.Popen, str]:
    """Run a server ``script`` (``python -c``) on a free port with ``args`` after it; wait until it listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", script, str(port), *args], cwd=Path(__file__).parent)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the benchmark server did not start")
