"""``cnnlab serve``: the web view of the zoo, the anatomy, the runs and the playground."""
from __future__ import annotations

import argparse
import os
import socket
import sys

__all__ = ["register"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _cmd_serve(args: argparse.Namespace) -> int:
    from cnnlab.cli import CliError

    try:
        import uvicorn

        from cnnlab.web.app import create_app
    except ImportError as exc:
        raise CliError(f"cnnlab serve needs the web extra: pip install 'cnnlab[web]' ({exc})") from None

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if os.path.exists(args.runs) and not os.path.isdir(args.runs):
        raise ValueError(f"--runs {args.runs} is a file; give the folder of training runs")
    if args.results is not None and not os.path.isdir(args.results):
        raise ValueError(f"--results {args.results} is not a folder; give the folder `cnnlab compare --out` wrote")
    if args.playground is not None and not os.path.exists(args.playground):
        raise ValueError(f"no checkpoint at {args.playground} (--playground: a .pt file or a run folder)")
    if args.host not in LOCAL_HOSTS:
        print(f"cnnlab serve: warning: listening on {args.host}: anyone who can reach this machine on port "
              f"{args.port} can read your runs and run analyses; the server has no authentication",
              file=sys.stderr)
    # Requests must name this server by the address it listens on (a loopback name by default).
    hosts = None if args.host in LOCAL_HOSTS else ["*"] if args.host in ("0.0.0.0", "::") else [args.host]
    app = create_app(runs_dir=args.runs, playground=args.playground, results_dir=args.results, allowed_hosts=hosts)
    # Bind first, so that --port 0 can say which port it got.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"cnnlab serve: http://{shown}:{port}/  (runs: {app.state.runs_dir}; Ctrl-C stops)", file=sys.stderr,
          flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(f"http://{shown}:{port}/")
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="web app: the zoo, any model's anatomy, runs (live), an in-browser playground, comparisons",
        description="Start a local web app (Starlette + uvicorn) that opens on the model zoo. It reads only its "
                    "own assets and the runs folder, and listens on 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; another host prints a warning)")
    p.add_argument("--runs", default="runs", help="folder of training runs (default ./runs)")
    p.add_argument("--results", default=None,
                   help="folder of bench/compare results (*.jsonl, *.json, *.png; default: compare/ or results/ next to "
                        "the runs folder)")
    p.add_argument("--playground", default=None,
                   help="checkpoint or run folder for the playground (default: the newest lenet5 run in --runs)")
    p.add_argument("--open", action="store_true", help="also open the zoo in your web browser")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning)")
    p.set_defaults(func=_cmd_serve)
