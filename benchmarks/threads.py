"""CPU threads against training speed: why the trainer trains small models on one thread.

For each model and batch size, a fresh process trains for a fixed number of steps
(forward, backward, torch.optim step on random data of the model's input size) with
1 thread and with every core, and the script prints images per second, the ratio of
all cores to one, and the multiply-accumulates per step that the trainer's rule
(``cnnlab.train.loop.choose_threads``) compares with ``SMALL_STEP_MACS``. The load
average is printed too: on a busy machine extra threads spin against other work,
which is the case the rule guards against.

    python benchmarks/threads.py [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("lenet5", 16), ("lenet5", 128), ("resnet20", 32), ("resnet20", 128)]

CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[4]))
import cnnlab
from cnnlab.train.loop import _probe
name, batch, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
torch.manual_seed(0)
model = cnnlab.create_model(name, num_classes=10)
c, h, w = cnnlab.model_info(name).input_size
macs = _probe(model, name, "random", (c, h, w), 10, torch.device("cpu"))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(batch, c, h, w), torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"images_per_second": steps * batch / (time.perf_counter() - t), "macs_per_image": macs}))
"""


def measure(name: str, batch: int, threads: int, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), name, str(batch), str(threads), str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from cnnlab.train.loop import SMALL_STEP_MACS

    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; load average {os.getloadavg()[0]:.1f} at start; {args.steps} timed steps per run")
    print(f"{'model':<10} {'batch':>5} {'M MACs/step':>12} {'1 thread img/s':>15} {f'{cores} threads img/s':>17} "
          f"{'ratio':>6}  rule picks")
    for name, batch in CASES:
        one = measure(name, batch, 1, args.steps)
        many = measure(name, batch, cores, args.steps)
        step_macs = 3 * one["macs_per_image"] * batch
        pick = 1 if step_macs < SMALL_STEP_MACS else cores
        print(f"{name:<10} {batch:>5} {step_macs / 1e6:>12.0f} {one['images_per_second']:>15.0f} "
              f"{many['images_per_second']:>17.0f} {many['images_per_second'] / one['images_per_second']:>6.2f}  {pick}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
