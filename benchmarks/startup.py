"""Start-up of a training run: what torch.optim's first step costs, and what importing
its torch._dynamo dependency on a background thread (cnnlab.train.optim.preload) saves.

Each repeat is a fresh process that runs a one-step training job (LeNet-5, 32 digits
of mnist_5k, no validation) and reports the wall time from interpreter start to the
end of the job; half the processes disable the background import. Printed: mean +- std
of each, and their ratio. On a loaded machine the background thread competes for the
same cores, so the figure depends on the load, printed beside it.

    python benchmarks/startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import cnnlab.train.optim as optim
if sys.argv[2] == "off":
    optim.preload = lambda: None
from cnnlab.train import fit
fit("lenet5", "mnist_5k", epochs=1, train_samples=32, test_samples=32, batch_size=32, val_fraction=0,
    progress="none", out=sys.argv[3], threads=1)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def once(mode: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode, str(Path(tmp) / "run")],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.repeats} processes each, interleaved")
    on, off = [], []
    for _ in range(args.repeats):
        off.append(once("off"))
        on.append(once("on"))

    def ms(xs):
        return f"{statistics.mean(xs):.2f} +- {statistics.stdev(xs):.2f} s" if len(xs) > 1 else f"{xs[0]:.2f} s"

    print(f"one-step job, import on first step:      {ms(off)}")
    print(f"one-step job, import on a background thread: {ms(on)}")
    print(f"ratio (background / first step): {statistics.mean(on) / statistics.mean(off):.3f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
