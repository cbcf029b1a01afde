"""Build the tabular benchmark: train every architecture of a small space once.

    python benchmarks/search_table.py                      # layers-tiny on digits -> cnnlab/search/tables/
    python benchmarks/search_table.py --epochs 10 --out my_table.json

Each of the 512 architectures of ``layers-tiny`` (Zoph & Le's layer space cut to 3 layers
of 16 filters, 1 or 3 pixel filter heights and widths, skip connections) is trained by
the same trial function a real search uses (``cnnlab.search.trial.train_trial``:
``cnnlab.train.fit`` with the ``fast`` recipe, 10 epochs, batch 64, seed 0, 10% of the
training set held out for validation), one after another in this process on one thread.
The file records validation and test accuracy, parameters and seconds per architecture,
and how it was made (settings, versions, machine, git commit, CPU and wall time). The
table is written after every architecture, so an interrupted build continues where it
stopped. ``cnnlab search compare`` then runs strategies on it over many seeds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="layers-tiny")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--out", help="table file (default: the package's tables/SPACE_DATASET.json)")
    p.add_argument("--limit", type=int, help="stop after this many architectures (a partial table, for a try)")
    args = p.parse_args()

    import torch

    from cnnlab.search.spaces import get_space
    from cnnlab.search.tabular import table_path
    from cnnlab.search.trial import train_trial
    from cnnlab.train import env

    torch.set_num_threads(1)
    space = get_space(args.space)
    out = Path(args.out) if args.out else table_path(args.space, args.dataset)
    settings = {"recipe": args.recipe, "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                "val_fraction": args.val_fraction, "threads": 1, "trial_function": "cnnlab.search.trial:train_trial"}
    table = {"space": space.name, "space_args": space.args, "dataset": args.dataset, "how": {}, "entries": []}
    if out.exists():
        old = json.loads(out.read_text())
        if old["how"].get("settings") != settings or old["space"] != space.name:
            raise SystemExit(f"{out} was built with other settings; remove it or give another --out")
        table = old
    done = {e["index"] for e in table["entries"]}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    cpu_before = table["how"].get("cpu_seconds", 0.0)
    wall_before = table["how"].get("wall_seconds", 0.0)
    todo = [i for i in range(space.num_architectures) if i not in done][: args.limit]
    print(f"{space.name} on {args.dataset}: {space.num_architectures} architectures, {len(done)} done, "
          f"{len(todo)} to train -> {out}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for k, index in enumerate(todo):
            tokens = space.tokens_at(index)
            spec = {"space": space.name, "space_args": space.args, "tokens": list(tokens), "dataset": args.dataset,
                    "recipe": args.recipe, "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                    "val_fraction": args.val_fraction, "threads": 1, "with_test": True,
                    "out": os.path.join(scratch, str(index))}
            r = train_trial(spec)
            table["entries"].append({"index": index, "tokens": list(tokens), "val": r["val"], "test": r["test"],
                                     "params": r["params"], "seconds": round(r["seconds"], 3)})
            table["how"] = {
                "script": "benchmarks/search_table.py", "command": " ".join(sys.argv), "settings": settings,
                "reward": "validation top-1 of the final weights; test top-1 stored beside it for the final choice",
                "cpu_seconds": cpu_before + time.process_time() - cpu0,
                "wall_seconds": wall_before + time.perf_counter() - wall0,
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "versions": env.versions(), "machine": env.machine(), "git_commit": env.git_commit(),
            }
            table["entries"].sort(key=lambda e: e["index"])
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(table, separators=(",", ":")) + "\n")
            os.replace(tmp, out)
            if k % 16 == 0 or k == len(todo) - 1:
                print(f"  {len(table['entries'])}/{space.num_architectures}  last val {100 * r['val']['top1']:.2f}%  "
                      f"{table['how']['cpu_seconds']:.0f} CPU s", flush=True)
    vals = sorted(e["val"]["top1"] for e in table["entries"])
    print(f"done: val top-1 min {100 * vals[0]:.2f}%, median {100 * vals[len(vals) // 2]:.2f}%, "
          f"max {100 * vals[-1]:.2f}%; {table['how']['cpu_seconds']:.0f} CPU s, {table['how']['wall_seconds']:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
