"""Checking a cnnlab model against a reference manifest (tests/reference/*.json).

The seeded fill and input follow the manifests' documented recipe: keys are filled
in sorted order, so two models fill identically exactly when their state_dict keys
and shapes agree; the fingerprint then shows they compute the same function.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import cnnlab

REFERENCE_DIR = Path(__file__).parent / "reference"


def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def load_manifest(name: str) -> dict:
    return json.loads((REFERENCE_DIR / f"{name}.json").read_text())


def seeded_fill(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key in sorted(state):
            tensor = state[key]
            if not tensor.is_floating_point():
                continue
            leaf = key.rsplit(".", 1)[-1]
            shape = tensor.shape
            if leaf == "running_var":
                value = 1 + 0.1 * torch.rand(shape, generator=gen)
            elif leaf == "running_mean":
                value = 0.1 * torch.randn(shape, generator=gen)
            elif tensor.dim() >= 2:
                value = torch.randn(shape, generator=gen) / math.sqrt(tensor[0].numel())
            elif leaf == "weight":
                value = 1 + 0.1 * torch.randn(shape, generator=gen)
            else:
                value = 0.1 * torch.randn(shape, generator=gen)
            tensor.copy_(value)


def seeded_input(seed: int, size: int, batch: int = 2, channels: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randn(batch, channels, size, size, generator=gen)


def fingerprint(logits: torch.Tensor) -> dict:
    logits = logits.detach().double()
    ramp = torch.linspace(-1, 1, logits.shape[1], dtype=torch.float64)
    return {
        "first16": logits[:, :16].tolist(),
        "l2": logits.norm(dim=1).tolist(),
        "weighted_sum": (logits @ ramp).tolist(),
        "argmax": logits.argmax(dim=1).tolist(),
    }


def fingerprint_mismatches(got: dict, want: dict, rel: float = 1e-4) -> list[str]:
    """Human-readable differences between two fingerprints; empty when they agree.

    Logits are compared to ``rel`` of the row's largest stored magnitude; the row
    norm relative to itself, the weighted sum relative to the row norm.
    """
    problems = []
    for row, (g16, w16) in enumerate(zip(got["first16"], want["first16"])):
        scale = max(max(abs(v) for v in w16), 1e-6)
        for i, (a, b) in enumerate(zip(g16, w16)):
            if abs(a - b) > rel * scale:
                problems.append(f"row {row} logit {i}: {a:.7g} != {b:.7g}")
                break
        l2 = want["l2"][row]
        if abs(got["l2"][row] - l2) > rel * l2:
            problems.append(f"row {row} l2: {got['l2'][row]:.7g} != {l2:.7g}")
        if abs(got["weighted_sum"][row] - want["weighted_sum"][row]) > rel * l2:
            problems.append(f"row {row} weighted_sum: {got['weighted_sum'][row]:.7g} != {want['weighted_sum'][row]:.7g}")
    if got["argmax"] != want["argmax"]:
        problems.append(f"argmax {got['argmax']} != {want['argmax']}")
    return problems


def state_dict_layout(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def conv_linear_macs(model: torch.nn.Module, size: int, channels: int = 3) -> int:
    """Conv + linear MACs for one image, counted by PyTorch's FlopCounterMode on the meta device."""
    model = model.to("meta").eval()
    x = torch.empty(1, channels, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def build_on_meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)
