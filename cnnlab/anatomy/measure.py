"""A measured memory peak from a real pass, to compare with the meta-device estimate.

On CUDA the peak is ``torch.cuda.max_memory_allocated`` above what was allocated
before the pass. On the CPU it is replayed from the PyTorch profiler's allocation
and free events (``profile_memory=True``), so it counts tensor memory the same way
(not the Python heap or the allocator's cache).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["measure_peak"]


def _cpu_peak(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def _cuda_peak(fn, device) -> int:
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def measure_peak(model: nn.Module, input_shape: list[int], dtype: torch.dtype) -> dict:
    """Peak bytes of a real forward (eval, no grad) and a forward + backward (train mode)
    on ``model``'s device, over what the model's weights already take. The model is left
    as it was: its modes, its buffers (batch norm's running statistics) and no gradients."""
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    if device.type == "meta":
        raise ValueError("measure=True needs a model with real weights (a model on the meta device has none)")
    x = torch.randn(*input_shape, device=device, dtype=dtype)
    was_training = {m: m.training for m in model.modules()}
    # the train-mode pass updates batch norm's running statistics (and num_batches_tracked)
    # from random data: keep the model's buffers as they were
    buffers = [(b, b.detach().clone()) for b in model.buffers()]

    def forward():
        with torch.no_grad():
            model(x)

    def train_step():
        out = model(x)
        loss = out.logits.sum() if hasattr(out, "logits") else out.sum()
        if hasattr(out, "aux"):
            loss = loss + sum(a.sum() for a in out.aux)
        if loss.requires_grad:  # a model without trainable parameters has nothing to differentiate
            loss.backward()

    def peak(fn):
        return _cuda_peak(fn, device) if device.type == "cuda" else _cpu_peak(fn)

    try:
        model.eval()
        forward_peak = peak(forward)
        model.train()
        train_peak = peak(train_step)
    finally:
        for m, flag in was_training.items():
            m.training = flag
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        model.zero_grad(set_to_none=True)
    return {
        "device": str(device),
        "method": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "torch.profiler memory events",
        "forward_peak_bytes": int(forward_peak),
        "train_step_peak_bytes": int(train_peak),
    }
