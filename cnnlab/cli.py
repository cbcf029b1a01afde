"""The ``cnnlab`` command. One subcommand per part of the package.

Each part adds its own subcommands through a ``register(subparsers)`` function in
its ``cli`` module (``cnnlab.anatomy.cli``, ``cnnlab.train.cli``, ...). A
subcommand's handler is stored as ``func`` on its parser and returns an exit code.
Errors a user can cause are reported in one line, never as a traceback
(set ``CNNLAB_DEBUG=1`` to see the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Sequence

from cnnlab import __version__

# Parts that contribute subcommands, in the order they appear in --help.
_PARTS = ("cnnlab.anatomy.cli", "cnnlab.data.cli", "cnnlab.train.cli", "cnnlab.experiments.cli", "cnnlab.search.cli",
          "cnnlab.export.cli", "cnnlab.web.cli", "cnnlab.weights.cli", "cnnlab.bench.cli")


class CliError(Exception):
    """An error to report to the user as one line, with exit status 2."""


def _format_int(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def count_params(name: str) -> int:
    """Parameters of a registered model with its default arguments.

    An exact published count is returned as is (tests/test_registry.py checks that every
    built model equals its exact count); other models are built and counted on the meta
    device (no memory).
    """
    import torch

    from cnnlab.registry import create_model, model_info

    published = model_info(name).published
    if published.params_exact and published.params is not None:
        return published.params
    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.registry import list_models, model_info

    names = list_models(args.pattern, family=args.family)
    if not names:
        raise CliError(f"no model matches {args.pattern!r}" + (f" in family {args.family!r}" if args.family else ""))
    rows = []
    for name in names:
        info = model_info(name)
        row = info.to_dict()
        row["params"] = count_params(name)
        rows.append(row)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    header = ("name", "family", "year", "params", "input", "published")
    table = [header]
    for row in rows:
        c, h, w = row["input_size"]
        table.append(
            (
                row["name"],
                row["family"],
                str(row["paper"]["year"]),
                _format_int(row["params"]),
                f"{c}x{h}x{w}",
                model_info(row["name"]).published.accuracy_text(),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    right = {3}
    for k, r in enumerate(table):
        cells = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{len(rows)} model(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="A laboratory for convolutional network architectures: build, analyze, train and compare them.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered architectures")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--family", help="only this family (e.g. resnet, vgg)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=_cmd_models)

    for part in _PARTS:
        importlib.import_module(part).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (CliError, ValueError, TypeError, FileNotFoundError, PermissionError, OSError, RuntimeError) as exc:
        if os.environ.get("CNNLAB_DEBUG"):
            raise
        print(f"cnnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
