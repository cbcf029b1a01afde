"""How long the very deep residual nets take to build, run forward and run backward.

    python benchmarks/deep_resnets.py                      # CPU, batch 8, 32x32
    python benchmarks/deep_resnets.py --device cuda --batch 128 --json out.json

Prints one row per model (median of --repeats timed runs after one warm-up); never
asserts anything. Stochastic depth is switched on with --drop-path-rate to show the
training-time saving the paper reports (~25% for ResNet-110 at p_L = 0.5).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import cnnlab

DEFAULT_MODELS = ["resnet110", "resnet110_sd", "preact_resnet164", "resnet1202", "preact_resnet1001"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, device: torch.device, batch: int, repeats: int, drop_path_rate: float | None) -> dict:
    kwargs = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
    start = time.perf_counter()
    model = cnnlab.create_model(name, **kwargs).to(device)
    _sync(device)
    build_s = time.perf_counter() - start
    size = cnnlab.model_info(name).input_size[-1]
    x = torch.randn(batch, 3, size, size, device=device)

    model.eval()

    def forward():
        with torch.no_grad():
            model(x)

    model_train = model.train

    def train_step():
        model_train()
        model.zero_grad(set_to_none=True)
        model(x).logsumexp(dim=1).mean().backward()

    forward_s = _timed(forward, device, repeats)
    train_s = _timed(train_step, device, repeats)
    return {
        "model": name,
        "blocks": len(model.residual_blocks()),
        "params": sum(p.numel() for p in model.parameters()),
        "drop_path_rate": drop_path_rate,
        "batch": batch,
        "input": size,
        "build_s": build_s,
        "forward_s": forward_s,
        "forward_backward_s": train_s,
        "backward_s": max(train_s - forward_s, 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--drop-path-rate", type=float, default=None,
                        help="override every model's stochastic-depth rate (1 - p_L)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header = f"{'model':20s} {'blocks':>6s} {'params':>12s} {'build s':>8s} {'fwd s':>8s} {'fwd+bwd s':>9s} {'bwd s':>8s}"
    print(f"# device {device} ({platform.processor() or platform.machine()}), batch {args.batch}, torch {torch.__version__}")
    print(header)
    rows = []
    for name in args.models:
        row = bench(name, device, args.batch, args.repeats, args.drop_path_rate)
        rows.append(row)
        print(f"{name:20s} {row['blocks']:6d} {row['params']:12,d} {row['build_s']:8.3f} {row['forward_s']:8.3f} "
              f"{row['forward_backward_s']:9.3f} {row['backward_s']:8.3f}", flush=True)
    if args.json:
        meta = {"device": str(device), "torch": torch.__version__, "batch": args.batch, "repeats": args.repeats}
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
