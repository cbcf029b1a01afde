"""The ``cnnlab`` command. One subcommand per part of the package.

Each part adds its own subcommands through a ``register(subparsers)`` function in
its ``cli`` module (``cnnlab.anatomy.cli``, ``cnnlab.train.cli``, ...). A
subcommand's handler is stored as ``func`` on its parser and returns an exit code.
Errors a user can cause (a :class:`cnnlab.errors.UserError`, any ``ValueError``, an
``OSError`` such as a missing file or a full disk) are reported in one line, never as
a traceback; anything else that escapes is a bug in cnnlab and is reported as one,
"internal error", with where it happened (set ``CNNLAB_DEBUG=1`` to see the
traceback of either).

``cnnlab --help``, ``--version``, a mistyped command and an argument error in a
command whose part does not need it answer without importing torch: only the part
of the command given is imported (see ``_COMMANDS``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from cnnlab import __version__
from cnnlab.errors import UserError

# Parts that contribute subcommands, in the order they appear in --help.
_PARTS = ("cnnlab.anatomy.cli", "cnnlab.data.cli", "cnnlab.train.cli", "cnnlab.experiments.cli", "cnnlab.search.cli",
          "cnnlab.export.cli", "cnnlab.web.cli", "cnnlab.weights.cli", "cnnlab.bench.cli")

# The subcommands each part registers, with their --help line, so that the top-level
# parser can list them without importing the parts (which may import torch).
# tests/test_cli_layering.py checks this table against what the parts register; a part
# missing here is simply imported.
_COMMANDS: dict[str, dict[str, str]] = {
    "cnnlab.anatomy.cli": {
        "summary": "layer-by-layer table: output volume, memory, params, MACs, receptive field",
        "lecture": "the lecture's worked calculations, recomputed from built modules",
    },
    "cnnlab.data.cli": {
        "datasets": "list the datasets, their sizes and whether they are here",
        "download": "download datasets (checksummed, resumable) into the data folder",
    },
    "cnnlab.train.cli": {
        "train": "train a model with its paper's recipe",
        "recipes": "list the training recipes from the papers",
        "eval": "evaluate a checkpoint (or a model's published weights) on a test set",
        "predict": "classify image files with a checkpoint (or a model's published weights)",
    },
    "cnnlab.experiments.cli": {"experiment": "the lecture's claims as experiments with verdicts"},
    "cnnlab.search.cli": {"search": "architecture search: REINFORCE controller, random, evolution"},
    "cnnlab.export.cli": {"export": "export a model or checkpoint to ONNX, checked against PyTorch"},
    "cnnlab.web.cli": {
        "serve": "web app: the zoo, any model's anatomy, runs (live), an in-browser playground, comparisons",
    },
    "cnnlab.weights.cli": {"weights": "list the published pretrained weights (size, accuracy, cached?)"},
    "cnnlab.bench.cli": {
        "bench": "latency (median/p90/p99), images/s, peak memory, energy per batch size",
        "compare": "Canziani-style comparison: accuracy, operations, params, time, memory, power",
    },
}


class CliError(UserError):
    """An error to report to the user as one line, with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument error is two short lines, not the whole usage.

    ``cnnlab train``'s usage alone is 36 lines; printed before the error it buries
    it. The error names the flag; ``--help`` shows the rest.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the arguments)\n")


def _unrecognized(parser: argparse.ArgumentParser, argv: Sequence[str], extra: Sequence[str]) -> None:
    """Report arguments no parser took, from the (sub)command they were given to, with close flags."""
    import difflib

    target, rest = parser, list(argv)
    while True:  # the innermost subcommand named in argv, each level after the one before
        subs = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        at = next((i for i, a in enumerate(rest) if subs and a in subs[0].choices), None)
        if at is None:
            break
        target, rest = subs[0].choices[rest[at]], rest[at + 1:]
    flags = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
    close = [m for e in extra if e.startswith("--")
             for m in difflib.get_close_matches(e.split("=", 1)[0], flags, n=1, cutoff=0.6)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    target.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


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


def build_parser(command: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The ``cnnlab`` parser. With ``lazy``, only the part that registers ``command``
    (and any part missing from ``_COMMANDS``) is imported; the other subcommands get
    placeholder parsers that carry their --help line only."""
    parser = _Parser(
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
        known = _COMMANDS.get(part)
        if lazy and known is not None and command not in known:
            for name, text in known.items():
                sub.add_parser(name, help=text)
        else:
            importlib.import_module(part).register(sub)
    return parser


def _is_user_error(exc: BaseException) -> bool:
    """Errors that say something about the input or the machine, not about cnnlab's code."""
    if isinstance(exc, (UserError, ValueError, OSError, MemoryError)):
        return True
    # Failures of a run that are not bugs, by their classes in modules already imported
    # (so this check never imports torch or the training code).
    for module, name in (("torch", "OutOfMemoryError"), ("cnnlab.train.loop", "TrainingDiverged")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _out_of_memory(exc: BaseException) -> str | None:
    """PyTorch's CPU allocator failing (a RuntimeError, not a MemoryError), said as what it is."""
    import re

    text = str(exc)
    if not isinstance(exc, RuntimeError) or "can't allocate memory" not in text:
        return None
    asked = re.search(r"tried to allocate (\d+) bytes", text)
    size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB in one tensor)" if asked else ""
    return f"out of memory{size}: give a smaller --batch-size or input size"


def _where(exc: BaseException) -> str:
    """The innermost frame of the traceback in cnnlab's own code, as ``path:line in function``."""
    frames = traceback.extract_tb(exc.__traceback__)
    root = Path(__file__).resolve().parent
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if root in path.parents:
            return f"cnnlab/{path.relative_to(root).as_posix()}:{frame.lineno} in {frame.name}"
    last = frames[-1] if frames else None
    return f"{last.filename}:{last.lineno} in {last.name}" if last else "unknown place"


def _report_bug(command: str, exc: BaseException) -> None:
    print(f"cnnlab {command}: internal error: {type(exc).__name__}: {exc} (at {_where(exc)})\n"
          "This is a bug in cnnlab, not a problem with your input; please report it with the command "
          "you ran and the traceback (rerun with CNNLAB_DEBUG=1 to print it).", file=sys.stderr)


def _command_of(argv: Sequence[str]) -> str | None:
    # The top-level parser has only flags without values (-h, --version), so the
    # command is the first argument that is not a flag.
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv), lazy=True)
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, argv, extra)
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
    except Exception as exc:
        if os.environ.get("CNNLAB_DEBUG"):
            raise
        if _is_user_error(exc) or _out_of_memory(exc):
            print(f"cnnlab {args.command}: error: {_out_of_memory(exc) or exc}", file=sys.stderr)
            return 2
        _report_bug(args.command, exc)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
