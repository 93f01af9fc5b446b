"""The ``wcode-magic`` command line. Subcommands keep it open for more tools later.

``wcode-magic serve [--host 127.0.0.1] [--port 8000] [--test-mode]`` runs the bundled local model in the foreground
and prints its base URL, for use from another process (a second notebook, curl, the openai SDK).

``wcode-magic demo [--notebooks DIR] [--out DIR] [--save] [--local] [--no-chat]`` streams one chat in the terminal, then
executes the notebooks (``make demo``; the work is in ``wcode_magic.demo``).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence
from pathlib import Path

from .demo import DEFAULT_NOTEBOOKS, DEFAULT_OUT


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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the offline local model as an OpenAI-compatible server",
        description="Run the bundled local n-gram model as an OpenAI-compatible server (Ctrl-C stops it).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
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
    """Exit status 1 if the chat or any notebook failed, 130 after Ctrl-C."""
    from . import demo

    ok = True
    try:
        if not args.no_chat:
            ok = demo.terminal_chat(local=args.local or args.save)
        runs = demo.run_notebooks(args.notebooks, args.out, save=args.save, local=args.local)
    except KeyboardInterrupt:
        print("\nInterrupted.")
        return 130
    return 0 if ok and all(r.ok for r in runs) else 1


def _serve(args: argparse.Namespace) -> int:
    """Bind first (so the printed URL is real even with --port 0), then hand the socket to uvicorn."""
    import uvicorn

    from .local.ngram import default_model
    from .local.server import create_app

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose proto says TCP;
    # without it every answer on a kept-alive connection waited ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    mode = " (test mode: X-Wcode-Fault honoured)" if args.test_mode else ""
    default_model()  # train before announcing the URL, so the first request is as fast as the rest
    print(f"wcode-magic local model: http://{shown}:{port}/v1{mode}", flush=True)
    config = uvicorn.Config(create_app(test_mode=args.test_mode), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
