"""``cnnlab export MODEL|CHECKPOINT --format onnx``."""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]

FORMATS = ("onnx",)
DEFAULT_OPSET = 18  # the lowest opset torch's exporter targets natively; onnxruntime-web runs it


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.cli import CliError
    from cnnlab.export.core import export_onnx

    if args.format not in FORMATS:
        raise ValueError(f"unknown --format {args.format!r}; cnnlab exports to: {', '.join(FORMATS)}")
    try:
        result = export_onnx(args.source, args.out, opset=args.opset, input_size=args.input_size,
                             batch_size=args.batch_size, num_classes=args.num_classes, check=not args.no_check,
                             atol=args.atol, activations=args.activations, preprocess=args.preprocess)
    except ImportError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    shape = "x".join(str(v) for v in result.input_shape)
    print(f"wrote {result.path} ({result.bytes / 1e6:.2f} MB, {result.model}, input {shape}, opset {result.opset}, "
          f"{result.seconds:.1f} s)")
    p = result.parity
    if p.get("checked"):
        print(f"parity: {p['runtime']} matches PyTorch on a {p['input']} input, max |difference| "
              f"{p['max_abs_diff']:.2e} (tolerance {p['atol']:g} + {p['rtol']:g} * |value|)")
    else:
        print("parity: not checked (--no-check)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX, checked against PyTorch",
        description="Export a registered model (random weights) or a trained checkpoint / run folder to ONNX with "
                    "torch's exporter, then run the same input through PyTorch and onnxruntime and fail unless the "
                    "outputs agree.",
    )
    p.add_argument("source", metavar="MODEL|CHECKPOINT", help="registered model name, checkpoint file or run folder")
    p.add_argument("--format", default="onnx", help="output format (onnx)")
    p.add_argument("--out", default=None, help="output file or folder (default: ./MODEL.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--input-size", default=None,
                   help="H (square), HxW or CxHxW (default: the model's or the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the exported graph (default 1)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of a registered model (default: its own)")
    p.add_argument("--atol", type=float, default=1e-4, help="parity tolerance, absolute (default 1e-4; plus 1e-3 relative)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--activations", action="store_true",
                   help="also output every top-level layer's activations (what `cnnlab serve`'s playground draws)")
    p.add_argument("--preprocess", action="store_true",
                   help="checkpoints: take 0-255 images at the dataset's native size; resize and normalise in the graph")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=_cmd_export)
