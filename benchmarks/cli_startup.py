"""How long `cnnlab --help`, `--version` and argument errors take, against a baseline.

The baseline is another revision of cnnlab (default: the git ref ``main``), exported
to a temporary folder and run side by side with this checkout, interleaved, with
the same interpreter; the figure is the median wall time of each command over
``--repeat`` runs, and the ratio baseline / this checkout. Whether torch was
imported is reported too (`-X importtime`).

    python benchmarks/cli_startup.py [--baseline REF] [--repeat N]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["--version"], ["no-such-command"], ["models", "--no-such-flag"],
            ["summary", "--depth", "x", "resnet18"], ["train", "--epochs", "x"])


def _export(ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "cnnlab"], capture_output=True, check=True)
    tar = dest / "src.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")


def _run(root: Path, args: list[str]) -> tuple[float, bool]:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnlab", *args], cwd=root, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    torch = any(re.search(r"\|\s+torch$", line.rstrip()) for line in proc.stderr.splitlines())
    return took, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref to compare with (default: main)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        _export(args.baseline, base)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeat} runs, interleaved")
        print(f"{'command':34s} {args.baseline:>14s} {'this checkout':>16s}  ratio")
        for cmd in COMMANDS:
            times = {"base": [], "this": []}
            torch = {}
            for _ in range(args.repeat):
                for key, root in (("base", base), ("this", ROOT)):
                    t, imported = _run(root, cmd)
                    times[key].append(t)
                    torch[key] = imported
            b, a = statistics.median(times["base"]), statistics.median(times["this"])
            label = lambda k, v: f"{v:.3f}s{' (torch)' if torch[k] else ''}"
            print(f"cnnlab {' '.join(cmd):27s} {label('base', b):>14s} {label('this', a):>16s}  {b / a:.1f}x")


if __name__ == "__main__":
    main()
