"""``cnnlab summary MODEL`` and ``cnnlab lecture EXAMPLE``."""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "EXAMPLES"]

# The examples of cnnlab.anatomy.lecture (named here so that building the parser does not import torch).
EXAMPLES = ("alexnet-conv1", "vgg16-memory", "stacked-3x3", "inception-cost", "1x1-conv", "googlenet-vs-alexnet")

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "half": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16", "float64": "float64", "fp64": "float64"}


def _cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.anatomy.core import analyze

    if args.depth is not None and args.depth < 1:
        raise ValueError(f"--depth must be at least 1, got {args.depth}")
    dtype = _DTYPES.get(args.dtype.lower())
    if dtype is None:
        raise ValueError(f"unknown --dtype {args.dtype!r}; choose from: {', '.join(sorted(set(_DTYPES)))}")
    count = [k.strip() for k in args.count.split(",") if k.strip()]
    weights = None
    if args.pretrained:  # analyze at the size the published weights were evaluated at
        from cnnlab.weights import get_weights

        weights = get_weights(args.model, args.pretrained)
        args.input_size = args.input_size or str(weights.preprocessing.crop)
    a = analyze(args.model, args.input_size, batch_size=args.batch_size, dtype=getattr(torch, dtype),
                count=count, mode=args.mode, optimizer=args.optimizer, measure=args.measure)
    if args.json:
        sys.stdout.write(a.to_json() + "\n")
    elif args.csv:
        sys.stdout.write(a.to_csv(args.depth))
    elif args.markdown:
        sys.stdout.write(a.to_markdown(args.depth, flops=args.flops))
    else:
        if weights is not None:
            size = f"{weights.size_mb:.0f} MB" if weights.size_mb else "size unpublished"
            print(f"weights {weights.name} ({weights.publisher} {weights.publisher_name}, {size}): published top-1 "
                  f"{weights.accuracy_text()} on ImageNet-1k; preprocessing {weights.preprocessing.describe()}\n")
        print(a.table(args.depth, flops=args.flops))
    return 0


def _cmd_lecture(args: argparse.Namespace) -> int:
    from cnnlab.anatomy.lecture import run_example

    data, text = run_example(args.example)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summary",
        help="layer-by-layer table: output volume, memory, params, MACs, receptive field",
        description="Analyze a registered model on the meta device (no data, no activations): per layer the "
                    "output volume, memory, parameters, MACs and receptive field, with totals, a training-memory "
                    "estimate and where memory and parameters sit.",
    )
    p.add_argument("model", help="registered model name (see `cnnlab models`)")
    p.add_argument("--input-size", default=None,
                   help="H (square, the model's channels), HxW or CxHxW, e.g. 224 or 3x224x224 (default: the model's)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size for the per-batch totals (default 1)")
    p.add_argument("--depth", type=int, default=None, help="show rows down to this nesting depth (default: all)")
    p.add_argument("--dtype", default="float32", help="dtype for the byte figures (float32, float16, bfloat16, float64)")
    p.add_argument("--count", default="conv,linear",
                   help="op kinds the MACs include: conv,linear,norm,act,pool,eltwise (default conv,linear)")
    p.add_argument("--mode", choices=("eval", "train"), default="eval", help="trace in eval (default) or train mode")
    p.add_argument("--optimizer", default="momentum",
                   help="optimizer state in the training estimate: sgd, momentum (default), adam, adamw, rmsprop")
    p.add_argument("--measure", action="store_true",
                   help="also build the model with real weights and measure the peak memory of a real pass")
    p.add_argument("--flops", action="store_true", help="show FLOPs (2 per MAC) instead of MACs")
    p.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="describe the published weights (`cnnlab weights`) and analyze at their input size")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the full analysis as JSON")
    fmt.add_argument("--csv", action="store_true", help="print the rows as CSV")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_summary)

    p = subparsers.add_parser(
        "lecture",
        help="the lecture's worked calculations, recomputed from built modules",
        description="Recompute one of the lecture's worked examples by building the modules and analyzing them; "
                    "where the lecture's own figure differs, say so.",
    )
    p.add_argument("example", choices=list(EXAMPLES), metavar="EXAMPLE", help=f"one of: {', '.join(EXAMPLES)}")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_lecture)
