"""Training throughput (images/s) of resnet20 and resnet50 on `shapes`: fp32, bf16, channels-last.

Wall-clock images/s depend on what else the machine runs; images per CPU-second (process
time) do much less, and with --threads 1 they are what one idle core delivers.

One training step = the trainer's own pieces (cnnlab.train.loop: autocast, loss, SGD
step) on batches from cnnlab.data's loader, so the figure is what `cnnlab train`
achieves minus evaluation and checkpointing. Each setting is warmed up, then timed
over --steps steps; the table shows images/s and the ratio to fp32 on the same device.

    python benchmarks/train_throughput.py [--models resnet20 resnet50] [--steps 10] [--json out.json]

Defaults on CPU: resnet20 at 32x32 (its CIFAR size), resnet50 at 64x64 (224x224 is
~40x slower per image and a CPU run would take minutes); on CUDA both at their native sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from cnnlab import data as cdata  # noqa: E402
from cnnlab.registry import create_model, model_info  # noqa: E402
from cnnlab.train.env import cpu_model  # noqa: E402
from cnnlab.train.loop import autocast, loss_fn, make_optimizer  # noqa: E402
from cnnlab.train.recipes import recipe_for_model  # noqa: E402

SETTINGS = (("fp32", "fp32", False), ("bf16", "bf16", False), ("channels-last", "fp32", True),
            ("bf16+channels-last", "bf16", True))


def measure(name: str, device: torch.device, size: int, batch: int, precision: str, channels_last: bool,
            steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    c = model_info(name).input_size[0]
    model = create_model(name, num_classes=10).to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    recipe = recipe_for_model(name)
    optimizer = make_optimizer(model, recipe)
    ds = cdata.load_dataset("shapes", "train", num_samples=batch * 4, image_size=size)
    loader = cdata.make_loader(ds, batch_size=batch, train=True, device=device, input_size=(c, size, size),
                               augment=cdata.AugmentConfig(crop_padding=4, flip=True))
    batches = [b for _, b in zip(range(4), loader)]

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out = model(x)
        loss, _ = loss_fn(out, y, label_smoothing=0.0, aux_weights=())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(warmup):
        step(*batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(*batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    images = steps * batch
    return images / (time.perf_counter() - t0), images / (time.process_time() - c0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet50"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="default: 64 on CPU, 128 on CUDA")
    p.add_argument("--cpu-size", nargs="+", default=["resnet20=32", "resnet50=64"], metavar="MODEL=SIZE")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    cpu_sizes = {k: int(v) for k, v in (s.split("=") for s in args.cpu_size)}

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, {args.threads} threads" + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    rows = []
    for dev_name in devices:
        device = torch.device(dev_name)
        batch = args.batch or (64 if dev_name == "cpu" else 128)
        for name in args.models:
            size = cpu_sizes.get(name, model_info(name).input_size[1]) if dev_name == "cpu" else model_info(name).input_size[1]
            base = base_cpu = None
            for label, precision, cl in SETTINGS:
                ips, per_cpu = measure(name, device, size, batch, precision, cl, args.steps, args.warmup)
                base, base_cpu = base or ips, base_cpu or per_cpu
                rows.append({"device": dev_name, "model": name, "image_size": size, "batch": batch, "setting": label,
                             "images_per_second": ips, "vs_fp32": ips / base,
                             "images_per_cpu_second": per_cpu, "per_cpu_vs_fp32": per_cpu / base_cpu})
                print(f"{dev_name:<5} {name:<9} {size:>3}px batch {batch:<4} {label:<19} {ips:9.1f} img/s "
                      f"x{ips / base:.2f}   {per_cpu:9.1f} img/CPU-s x{per_cpu / base_cpu:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": cpu_model(), "cpus": os.cpu_count(),
                                               "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
