"""What the cheap re-verification of a cached weights file saves: the size + hash-record
check against a full SHA-256 of the file, side by side, on a file of --mb megabytes
(default 528, the size of torchvision's VGG-16 checkpoint) written to a temporary folder.

    python benchmarks/weights_verify.py [--mb 528] [--repeat 5]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time

from cnnlab.weights.spec import Preprocessing, Weights
from cnnlab.weights.store import verify_cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=528)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        block = os.urandom(1 << 20)
        h = hashlib.sha256()
        path = os.path.join(folder, "bench-00000000.pth")
        with open(path, "wb") as f:
            for _ in range(args.mb):
                f.write(block)
                h.update(block)
        w = Weights(model="bench", tag="X", url="https://example.invalid/bench-00000000.pth", format="pickle",
                    preprocessing=Preprocessing(256, 224, "bilinear", (0.5,) * 3, (0.5,) * 3),
                    license="-", publisher="-", publisher_name="-", source="-", sha256=h.hexdigest())

        def timed(full: bool) -> list[float]:
            out = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                assert verify_cached(w, folder, full=full) == "ok"
                out.append(time.perf_counter() - t)
            return out

        full = timed(True)  # the first full check also writes the record
        cheap = timed(False)
    f, c = statistics.median(full), statistics.median(cheap)
    print(f"file: {args.mb} MB; {args.repeat} repetitions each, median wall time, {os.cpu_count()} logical CPUs")
    print(f"  full SHA-256       {f * 1e3:10.1f} ms")
    print(f"  size + record      {c * 1e3:10.3f} ms")
    print(f"  ratio              {f / c:10.0f} x  (full / cheap)")


if __name__ == "__main__":
    main()
