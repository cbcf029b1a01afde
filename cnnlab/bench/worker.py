"""The worker subprocess: ``python -m cnnlab.bench.worker`` reads one job (JSON) on
stdin, measures one model (:func:`cnnlab.bench.measure.measure_model`) and writes one
line per record to stdout, each prefixed with :data:`MARK` so that anything the model
itself prints is not mistaken for a record."""
from __future__ import annotations

import importlib
import json
import sys

MARK = "@cnnlab-bench "


def main() -> int:
    job = json.loads(sys.stdin.read())
    for p in reversed(job.pop("sys_path", [])):
        if p not in sys.path:
            sys.path.insert(0, p)
    for module in job.pop("imports", []):  # extra modules that register models (tests, plug-ins)
        importlib.import_module(module)
    out = sys.stdout

    def emit(record: dict) -> None:
        out.write(MARK + json.dumps(record) + "\n")
        out.flush()

    from cnnlab.bench.measure import measure_model

    name = job.pop("model")
    batch_sizes = job.pop("batch_sizes")
    measure_model(name, batch_sizes, emit=emit, **job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
