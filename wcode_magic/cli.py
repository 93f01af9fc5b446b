"""The ``wcode-magic`` command line. Subcommands keep it open for more tools later.

``wcode-magic serve [--host 127.0.0.1] [--port 8000] [--allow-host NAME] [--test-mode]`` runs the bundled local model
in the foreground and prints its base URL once it accepts connections, for use from another process (a second
notebook, curl, the openai SDK). A bad or busy port or an unknown host is one line on stderr, not a traceback; Ctrl-C
(or a TERM signal) stops it cleanly with exit status 0.

``wcode-magic demo [--notebooks DIR] [--out DIR] [--save] [--local] [--no-chat]`` streams one chat in the terminal, then
executes the notebooks (``make demo``; the work is in ``wcode_magic.demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .demo import DEFAULT_NOTEBOOKS, DEFAULT_OUT

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_SHUTDOWN_GRACE_S = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wcode-magic", description="wcode-magic tools")
    parser.add_argument("--version", action="version", version=f"wcode-magic {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the offline local model as an OpenAI-compatible server",
        description="Run the bundled local n-gram model as an OpenAI-compatible server (Ctrl-C stops it).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    # a string, checked by _serve: a bad port is then one line like every other reason the server cannot start
    serve.add_argument("--port", default="8000", help="port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests addressed to NAME (the Host header; repeatable). The server answers to "
        "localhost, 127.0.0.1, [::1] and --host; with --host 0.0.0.0 add the names other machines use",
    )
    serve.add_argument(
        "--test-mode", action="store_true", help="honour the X-Wcode-Fault header (fault injection for tests)"
    )
    serve.set_defaults(run=_serve)
    demo = commands.add_parser(
        "demo",
        help="stream one chat in the terminal, then execute the notebooks",
        description=(
            "Stream one chat (thinking, then answer) on wcode.net if a key is set, else on the bundled local model; "
            "then execute every notebook in --notebooks and write the executed copies to --out."
        ),
    )
    demo.add_argument(
        "--notebooks", type=Path, default=DEFAULT_NOTEBOOKS, help="directory of notebooks (default ./notebooks)"
    )
    demo.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where executed copies go (default ./build/notebooks)"
    )
    demo.add_argument(
        "--save",
        action="store_true",
        help="write the outputs back into the notebooks, from an offline run on the local model (no key)",
    )
    demo.add_argument("--local", action="store_true", help="use the bundled local model even if a key is set")
    demo.add_argument("--no-chat", action="store_true", help="skip the terminal chat; only execute the notebooks")
    demo.set_defaults(run=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    """Exit status 1 if the chat or any notebook failed or no notebook ran (a demo that showed nothing did not
    work: a script or CI checking the status must see that), 130 after Ctrl-C."""
    from . import demo

    ok = True
    try:
        if not args.no_chat:
            ok = demo.terminal_chat(local=args.local or args.save)
        runs = demo.run_notebooks(args.notebooks, args.out, save=args.save, local=args.local)
    except KeyboardInterrupt:
        print("\nInterrupted.")
        return 130
    return 0 if ok and runs and all(r.ok for r in runs) else 1


def _serve(args: argparse.Namespace) -> int:
    """Bind first (so the printed URL is real even with --port 0), hand the socket to uvicorn, and print the URL
    once uvicorn accepts connections: a script may connect as soon as it reads the line.

    Exit status: 0 after Ctrl-C or a TERM signal, 2 for a port that is not a number in 0..65535, 1 when the
    address cannot be used (busy port, unknown host, no permission).
    """
    from . import local

    port = _port(args.port)
    if port is None:
        _say(f"--port {args.port!r} is not a port number: give one from 0 to 65535 (0 picks a free port).")
        return 2
    try:
        sock = local.bind(args.host, port)
    except OSError as error:
        _say(_bind_failure(args.host, port, error))
        return 1
    host, bound_port = sock.getsockname()[:2]
    allowed = [*local.LOOPBACK_HOSTS, *([] if args.host in _WILDCARD_HOSTS else [args.host]), *args.allow_host]
    mode = " (test mode: X-Wcode-Fault honoured)" if args.test_mode else ""
    ready = f"wcode-magic local model: http://{_shown(host)}:{bound_port}/v1{mode}"
    signal.signal(signal.SIGTERM, _interrupt)  # uvicorn re-raises the signal it stopped on: stop as for Ctrl-C
    try:
        _run(sock, allowed, args.test_mode, on_ready=lambda: print(ready, flush=True))
    except KeyboardInterrupt:
        print("wcode-magic local model: stopped.", flush=True)
    return 0


def _port(text: str) -> int | None:
    """The port asked for, or None when it is not an integer from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        return None
    return port if 0 <= port <= 65535 else None


def _bind_failure(host: str, port: int, error: OSError) -> str:
    """What to do when ``host:port`` cannot be bound, in one line."""
    where = f"{_shown(host)}:{port}"
    if isinstance(error, socket.gaierror):
        return (
            f"unknown host {host!r}: give a name or address of this machine, such as 127.0.0.1 (this machine "
            "only) or 0.0.0.0 (every network interface)."
        )
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {_shown(host)} is already in use (another server?): stop it, or pick another port with "
            "--port (0 picks a free one)."
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host!r} is not an address of this machine: give one of its own, such as 127.0.0.1 or 0.0.0.0."
    if error.errno == errno.EACCES:
        return f"no permission to listen on {where}: ports below 1024 need administrator rights; pick another --port."
    return f"cannot listen on {where}: {error.strerror or error}."


def _run(sock: socket.socket, allowed_hosts: list[str], test_mode: bool, on_ready: Callable[[], None]) -> None:
    """Serve on ``sock`` until a signal stops uvicorn (which then re-raises it: KeyboardInterrupt for Ctrl-C)."""
    import uvicorn

    from .local.ngram import default_model
    from .local.server import create_app

    class ReadyServer(uvicorn.Server):
        """Calls ``on_ready`` once the listening socket is being served, not before (uvicorn logs nothing then:
        given sockets, it expects a supervisor to have said where it listens)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_ready()

    default_model()  # train before announcing the URL, so the first request is as fast as the rest
    app = create_app(test_mode=test_mode, allowed_hosts=allowed_hosts)
    # Ctrl-C ends answers still streaming after a second (a stalled test stream would otherwise hold it for its
    # whole stall); the cancelled answers are no error of anybody's, so uvicorn's log of them is left out
    logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=_SHUTDOWN_GRACE_S)
    ReadyServer(config).run(sockets=[sock])


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """False for uvicorn's records about the answers it cancels at the end of the shutdown grace."""
    if record.getMessage().endswith("timeout graceful shutdown exceeded"):
        return False
    error = record.exc_info[1] if record.exc_info else None
    if error is None:
        return True
    return not (isinstance(error, asyncio.CancelledError) or isinstance(error.__context__, asyncio.CancelledError))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _say(message: str) -> None:
    print(f"wcode-magic serve: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
