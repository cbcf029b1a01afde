"""cnnlab bench against an independent measurement of the same model and settings.

The independent method is ``torch.utils.benchmark.Timer.blocked_autorange`` (PyTorch's
own benchmarking tool: it picks a number of runs per block, times blocks until a
minimum time, and reports the median block time per run). For each model, R rounds
alternate the two methods so both see the same machine state:

  A. ``cnnlab.bench.bench`` (the full path a user runs: a worker subprocess, warm-up,
     the timed loop, its median latency per batch), then
  B. in this process, ``Timer("model(x)").blocked_autorange(min_run_time=T)`` on the
     same registered model, batch, input size, thread count, eval mode and
     ``torch.inference_mode``.

The figure is median(A) / median(B) over the rounds: 1.00 means both methods measure the
same time. The goal is 0.95-1.05. While A runs, this process is idle (it waits on the
worker), and the other way round. Both are compared twice: on the wall clock, and on
the process CPU time (cnnlab's ``cpu_ms`` against a Timer whose clock is
``time.process_time``), which a busy machine disturbs much less.

    python benchmarks/bench_vs_timm_method.py [--models resnet50 resnet18 squeezenet1_1]
        [--batch-size 1] [--rounds 5] [--min-time 1.0] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.utils.benchmark as tub  # noqa: E402

from cnnlab.bench import bench  # noqa: E402
from cnnlab.bench.runner import _cpu_model  # noqa: E402
from cnnlab.registry import create_model, model_info  # noqa: E402


def timer_median_ms(model, x, min_time: float, threads: int, clock=time.perf_counter) -> float:
    timer = tub.Timer("run(model, x)", globals={"model": model, "x": x, "run": _run}, num_threads=threads, timer=clock)
    return timer.blocked_autorange(min_run_time=min_time).median * 1000


def _run(model, x):
    with torch.inference_mode():
        model(x)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "resnet18", "squeezenet1_1"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"batch {args.batch_size}, {args.rounds} interleaved rounds, min time {args.min_time} s per method per round\n")
    print(f"{'model':<16}{'clock':<6}{'cnnlab ms':>11}{'Timer ms':>11}{'ratio':>8}   per-round ratios")
    results = []
    for name in args.models:
        size = model_info(name).input_size
        model = create_model(name).eval()
        x = torch.randn(args.batch_size, *size)
        timer_median_ms(model, x, 0.2, args.threads)  # warm this process's kernels once
        a_ms, b_ms, a_cpu, b_cpu = [], [], [], []
        for _ in range(args.rounds):
            rec = bench([name], [args.batch_size], min_time=args.min_time, threads=args.threads, warmup=3)[0]
            if rec["status"] != "ok":
                raise SystemExit(f"{name}: {rec['status']}: {rec.get('error')}")
            a_ms.append(rec["latency_ms"]["median"])
            a_cpu.append(rec["cpu_ms"]["median"])
            b_ms.append(timer_median_ms(model, x, args.min_time, args.threads))
            b_cpu.append(timer_median_ms(model, x, args.min_time, args.threads, clock=time.process_time))
        for clock, a, b in (("wall", a_ms, b_ms), ("cpu", a_cpu, b_cpu)):
            ratio = statistics.median(a) / statistics.median(b)
            per_round = " ".join(f"{x / y:.3f}" for x, y in zip(a, b))
            print(f"{name:<16}{clock:<6}{statistics.median(a):>11.2f}{statistics.median(b):>11.2f}{ratio:>8.3f}   "
                  f"{per_round}")
            results.append({"model": name, "clock": clock, "batch_size": args.batch_size, "cnnlab_median_ms": a,
                            "timer_median_ms": b, "ratio": ratio, "within_5_percent": 0.95 <= ratio <= 1.05})
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "cpu": _cpu_model(), "torch": torch.__version__, "results": results},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
