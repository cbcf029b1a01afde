"""The main job, timed end to end: `python -m cnnlab train lenet5 --seed S` (real MNIST
digits from mnist_5k, LeNet-5's recipe), over several seeds.

Target: >= 97% test accuracy on the 1,000 held-out digits within 60 s of wall-clock
time on a 2-core machine, start-up included. Each seed runs the command in a fresh
process and reads the accuracy from the run's results.json; the script prints each
run and the mean +- std. It also prints the processes' CPU time and the load average,
because wall time on a shared machine says more about the neighbours than about the code.

    python benchmarks/main_job.py [--seeds 5] [--json out.json] [-- extra train flags]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnlab.train.env import cpu_model  # noqa: E402
COMMAND = [sys.executable, "-m", "cnnlab", "train", "lenet5"]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(extra: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        load = os.getloadavg()[0]
        cpu0, t0 = children_cpu(), time.perf_counter()
        proc = subprocess.run([*COMMAND, "--out", str(out), "--seed", str(seed), *extra], cwd=ROOT, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
        if proc.returncode != 0:
            raise SystemExit(f"the main job failed:\n{proc.stderr}")
        results = json.loads((out / "results.json").read_text())
    return {"top1": results["test"]["top1"], "wall_seconds": wall, "cpu_seconds": cpu,
            "train_wall_seconds": results["wall_seconds"], "epochs": results["epochs"],
            "load_average": load, "printed": proc.stdout.strip().splitlines()[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="runs with seeds 0, 1, ... (default 5)")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("extra", nargs="*", help="extra flags for cnnlab train (after --)")
    args = p.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}")
    print(f"command: {' '.join(['python', '-m', 'cnnlab', 'train', 'lenet5', *args.extra])}")
    runs = []
    for i in range(args.seeds):
        r = run_once(args.extra, i)
        runs.append(r)
        print(f"seed {i}: test accuracy {100 * r['top1']:.2f}%  {r['wall_seconds']:.1f} s wall "
              f"(CPU {r['cpu_seconds']:.1f} s, load average {r['load_average']:.1f})", flush=True)
    acc = [100 * r["top1"] for r in runs]
    wall = [r["wall_seconds"] for r in runs]
    cpu = [r["cpu_seconds"] for r in runs]

    def ms(xs):
        return f"{statistics.mean(xs):.2f} +- {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

    print(f"test accuracy {ms(acc)} %   wall {ms(wall)} s   CPU {ms(cpu)} s   over {len(runs)} seeds "
          f"(target: >= 97% within 60 s wall on 2 cores)")
    print(f"last line printed by the job: {runs[-1]['printed']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": cpu_model(), "cpus": os.cpu_count(), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
