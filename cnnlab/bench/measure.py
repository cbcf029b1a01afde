"""Measure one model in this process: every batch size, timed, with memory and energy.

This is what a worker subprocess runs (:mod:`cnnlab.bench.worker`); the sweep in
:mod:`cnnlab.bench.runner` starts one worker per model so that one model's crash,
out-of-memory or leaked allocator state cannot spoil the others.

How a batch size is measured:

1. analysis figures from :func:`cnnlab.analyze` (meta device, no memory): parameters,
   MACs, weight bytes and the activation bytes of the forward pass;
2. ``warmup`` untimed runs (the first one pays for allocations, oneDNN primitive
   creation, cuDNN autotuning or ``torch.compile``);
3. the peak-memory tracker and the energy meter are started (so the peak is the
   steady state of a run above what stays allocated between runs);
4. timed runs (:func:`cnnlab.bench.stats.timed_loop`): until the runs add up to
   ``min_time`` seconds, there are at least 5, and the medians of the first and second
   half of the runs agree within 5% (else until 4x ``min_time``, and the record says
   ``stable: false``). On CUDA the clock is read after ``torch.cuda.synchronize``.

A run is one batch: in ``infer`` mode a forward pass in eval mode under
``torch.inference_mode``; in ``train`` mode zero_grad + forward + cross-entropy loss
(+ weighted auxiliary losses) + backward + an SGD step with momentum. ``bf16``/``fp16``
run under ``torch.autocast`` (weights stay fp32, as in mixed-precision training and
timm's ``--amp``); fp16 training on CUDA uses a gradient scaler.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from cnnlab.bench.memory import CpuPeak
from cnnlab.bench.meters import Unavailable, open_meter
from cnnlab.bench.stats import summarize, timed_loop

__all__ = ["measure_model", "is_oom", "PRECISIONS", "MODES"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("infer", "train")


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "failed to allocate" in text)


def _analysis(name: str, input_size: list[int], batch_size: int) -> dict:
    from cnnlab.anatomy import analyze

    try:
        a = analyze(name, tuple(input_size), batch_size=batch_size, training_estimate=True)
    except Exception as exc:  # the measurement stands without it; say why it is missing
        return {"unavailable": f"cnnlab.analyze failed: {exc}"}
    t = a.totals
    return {
        "params": t["params"],
        "macs": t["macs"],  # per image, conv + linear
        "weights_bytes": t["params_bytes"],
        "activations_bytes": t["forward_bytes_batch"],  # every value the forward pass writes, input included
        "forward_peak_bytes": t["forward_peak_bytes_batch"],  # most activation bytes alive at once
        "train_bytes": t["training"].get("total_bytes"),  # saved activations + weights + grads + momentum
        # what a training step allocates beyond what stays between steps (weights, momentum):
        # autograd's saved activations + the gradients (zero_grad(set_to_none) frees them each step)
        "train_step_bytes": (t["training"]["saved_activations_bytes"] + t["training"]["grads_bytes"]
                             if t["training"].get("saved_activations_bytes") is not None else None),
        "dtype": "float32",
    }


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _loss(out: Any, y: torch.Tensor, weights: tuple) -> torch.Tensor:
    if hasattr(out, "logits"):
        loss = F.cross_entropy(out.logits, y)
        for w, aux in zip(weights or (1.0,) * len(out.aux), out.aux):
            loss = loss + w * F.cross_entropy(aux, y)
        return loss
    return F.cross_entropy(out, y)


def _make_step(model: torch.nn.Module, x: torch.Tensor, mode: str, precision: str, device: torch.device):
    dtype = PRECISIONS[precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else None
    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode():
                if autocast:
                    with autocast():
                        model(x)
                else:
                    model(x)
        return step

    model.train()
    num_classes = getattr(model, "num_classes", 1000) or 1000
    y = torch.randint(0, num_classes, (x.shape[0],), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    weights = tuple(getattr(model, "aux_loss_weights", ()) or ())
    scaler = torch.amp.GradScaler("cuda") if (precision == "fp16" and device.type == "cuda") else None

    def step():
        opt.zero_grad(set_to_none=True)
        if autocast:
            with autocast():
                loss = _loss(model(x), y, weights)
        else:
            loss = _loss(model(x), y, weights)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    return step


class _CudaPeak:
    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        self.baseline = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict:
        torch.cuda.synchronize(self.device)
        return {"peak_bytes": torch.cuda.max_memory_allocated(self.device) - self.baseline,
                "reserved_peak_bytes": torch.cuda.max_memory_reserved(self.device),
                "method": "torch.cuda.max_memory_allocated above the memory allocated before the runs"}


def measure_model(
    name: str,
    batch_sizes: list[int],
    *,
    input_size: list[int],
    mode: str = "infer",
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    min_time: float = 1.0,
    warmup: int = 3,
    emit: Callable[[dict], None],
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Measure registered model ``name`` at each batch size; ``emit`` receives a
    ``{"type": "start", ...}`` record before each batch size and the result after it."""
    from cnnlab.registry import create_model

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    common = {"model": name, "mode": mode, "precision": precision, "device": device,
              "input_size": list(input_size), "channels_last": channels_last, "compile": compile,
              "threads": torch.get_num_threads()}
    try:
        model = create_model(name).to(dev)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        runner = torch.compile(model) if compile else model
    except Exception as exc:
        for bs in batch_sizes:
            emit({"type": "start", "model": name, "batch_size": bs})
            emit({"type": "result", **common, "batch_size": bs, "status": "oom" if is_oom(exc) else "error",
                  "error": f"building the model failed: {type(exc).__name__}: {exc}"})
        return

    for bs in batch_sizes:
        emit({"type": "start", "model": name, "batch_size": bs})
        record = {"type": "result", **common, "batch_size": bs}
        record["analysis"] = _analysis(name, input_size, bs)
        meter = open_meter(device)
        peak = _CudaPeak(dev) if dev.type == "cuda" else CpuPeak()
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
        x = step = None
        try:
            x = torch.randn(bs, *input_size, device=dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step = _make_step(runner, x, mode, precision, dev)
            for _ in range(warmup):
                step()
            sync()
            # after warm-up: one-time allocations (kernels, primitive caches) are in the baseline
            peak.start()
            if not isinstance(meter, Unavailable):
                meter.start()
            cpu_times: list[float] = []

            def timed_step(step=step):
                c0 = time.process_time()
                step()
                cpu_times.append(time.process_time() - c0)

            load_before = _load()
            times, stable = timed_loop(timed_step, min_time=min_time, clock=clock, sync=sync,
                                       on_run=(lambda: None) if isinstance(meter, Unavailable) else meter.sample)
            energy = None if isinstance(meter, Unavailable) else meter.stop()
            memory = peak.stop()
        except Exception as exc:
            record["status"] = "oom" if is_oom(exc) else "error"
            record["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        else:
            s = summarize(times)
            record.update({
                "status": "ok",
                "warmup_runs": warmup,
                "runs": s["runs"],
                "stable": stable,
                "latency_ms": {k[:-2]: v * 1000 for k, v in s.items() if k.endswith("_s") and k != "total_s"},
                "timed_s": s["total_s"],
                "images_per_s": bs / s["median_s"],  # at the median latency
                "images_per_s_mean": bs * s["runs"] / s["total_s"],  # all timed images / all timed time
                "ms_per_image": s["median_s"] * 1000 / bs,
                "memory": memory,
                # CPU time of this process per run (all its threads): with one thread, what an idle core
                # needs for a batch, little changed by other processes competing for the cores
                "cpu_ms": {k[:-2]: v * 1000 for k, v in summarize(cpu_times).items() if k.endswith("_s") and k != "total_s"},
                "load_average": [load_before, _load()],  # 1-minute load before and after the timed runs
            })
            if energy is None:
                record["energy"] = {"available": False, "reason": meter.reason}
            else:
                images = bs * s["runs"]
                record["energy"] = {"available": True, "energy_j": energy["energy_j"],
                                    "energy_per_image_j": energy["energy_j"] / images,
                                    "avg_power_w": energy["energy_j"] / energy["seconds"] if energy["seconds"] > 0 else None,
                                    "source": energy["source"], "counter_wraps": energy["wraps"]}
        finally:
            del x, step
            if mode == "train":
                runner.zero_grad(set_to_none=True)
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        record["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        emit(record)
