"""The ``wcode-magic`` command line. Subcommands keep it open for more tools later.

``wcode-magic serve [--host 127.0.0.1] [--port 8000] [--test-mode]`` runs the bundled local model in the foreground
and prints its base URL, for use from another process (a second notebook, curl, the openai SDK).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence


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
    return parser


def _serve(args: argparse.Namespace) -> int:
    """Bind first (so the printed URL is real even with --port 0), then hand the socket to uvicorn."""
    import uvicorn

    from .local.ngram import default_model
    from .local.server import create_app

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
