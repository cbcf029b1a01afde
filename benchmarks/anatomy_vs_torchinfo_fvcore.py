"""cnnlab.analyze vs torchinfo.summary vs fvcore's FlopCountAnalysis: time and peak memory.

Every (tool, model, batch) runs in a fresh Python process: the model is built with
real weights on the CPU (as a user would have it), the peak RSS is reset, and then
the tool analyzes the model once (cold: the first call in the process, including
the tool's own warm-up) and once more (warm). Reported: wall time of both calls,
the growth of the peak resident memory over the model's own, and the MACs the tool
reports (torchinfo's "mult-adds", fvcore's total, which it calls "flops").

    python benchmarks/anatomy_vs_torchinfo_fvcore.py [--models vgg16,resnet50] [--batches 1,32]
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, re, sys, time, warnings
import torch
torch.set_num_threads(2)
sys.path.insert(0, {root!r})
import cnnlab
from cnnlab.anatomy.lecture import vgg16_stack

tool, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cnnlab.registry.is_model(name):
    model = cnnlab.create_model(name).eval()
    c, h, w = cnnlab.model_info(name).input_size
elif name == "vgg16":
    model, (c, h, w) = vgg16_stack().eval(), (3, 224, 224)
else:
    raise SystemExit(f"unknown model {{name}}")
shape = (batch, c, h, w)

def peak_kb():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))

def run():
    if tool == "cnnlab":
        return cnnlab.analyze(model, (c, h, w), batch_size=batch).totals["macs_batch"]
    if tool == "torchinfo":
        import torchinfo
        return torchinfo.summary(model, input_size=shape, verbose=0).total_mult_adds
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(model, torch.randn(*shape))
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            return fca.total()
    raise SystemExit(tool)

open("/proc/self/clear_refs", "w").write("5")
base = peak_kb()
t0 = time.perf_counter(); macs = run(); cold = time.perf_counter() - t0
t0 = time.perf_counter(); run(); warm = time.perf_counter() - t0
print(json.dumps({{"cold_s": cold, "warm_s": warm, "peak_mb": (peak_kb() - base) / 1024, "macs": int(macs)}}))
"""


def run_one(tool: str, model: str, batch: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), tool, model, str(batch)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    import torch

    return f"{cpu}, {torch.get_num_threads()} threads used of {__import__('os').cpu_count()} cores, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="vgg16,resnet50,densenet121,inception_v3")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--tools", default="cnnlab,torchinfo,fvcore")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    tools = args.tools.split(",")
    results = []
    print(f"machine: {machine()}")
    header = f"{'model':<14}{'batch':>6}  {'tool':<10}{'cold s':>8}{'warm s':>8}{'peak MB':>10}{'MACs (batch)':>18}"
    print(header)
    print("-" * len(header))
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            rows = {}
            for tool in tools:
                r = run_one(tool, model, batch)
                rows[tool] = r
                results.append({"model": model, "batch": batch, "tool": tool, **r})
                if "error" in r:
                    print(f"{model:<14}{batch:>6}  {tool:<10}  error: {r['error']}")
                else:
                    print(f"{model:<14}{batch:>6}  {tool:<10}{r['cold_s']:>8.2f}{r['warm_s']:>8.2f}"
                          f"{r['peak_mb']:>10.0f}{r['macs']:>18,}")
            ours = rows.get("cnnlab", {})
            for tool in tools:
                if tool == "cnnlab" or "error" in rows[tool] or "error" in ours:
                    continue
                r = rows[tool]
                print(f"{'':<22}{tool} / cnnlab: warm time x{r['warm_s'] / max(ours['warm_s'], 1e-9):.1f}, "
                      f"peak memory x{r['peak_mb'] / max(ours['peak_mb'], 1):.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
