"""One trial: build a sampled architecture and train it with cnnlab's trainer.

The reward is the VALIDATION top-1 accuracy (a seeded, stratified split held out from the
training set by :func:`cnnlab.train.fit`'s ``val_fraction``); the test set plays no part in
the search. A trial function takes a JSON-able spec and returns a JSON-able dict with at
least ``reward``; it runs in a worker process or a Ray task, so anything it raises (or a
crash of its process) makes the trial *failed*, never the search.
"""
from __future__ import annotations

import importlib
import time
from typing import Any, Callable

__all__ = ["train_trial", "resolve_trial_fn", "TRIAL_FN"]

TRIAL_FN = "cnnlab.search.trial:train_trial"


def resolve_trial_fn(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``"module:function"`` -> the function."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"a trial function is given as 'module:function', got {path!r}")
    return getattr(importlib.import_module(module), name)


def train_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Train ``spec["tokens"]`` of ``spec["space"]`` on ``spec["dataset"]``; reward = validation top-1."""
    import torch

    from cnnlab import data as cdata
    from cnnlab.search.spaces import get_space
    from cnnlab.train import fit

    t0 = time.perf_counter()
    space = get_space(spec["space"], **spec.get("space_args", {}))
    info = cdata.dataset_info(spec["dataset"])
    torch.manual_seed(spec.get("seed", 0))  # the architecture's initial weights
    model = space.build(tuple(spec["tokens"]), num_classes=info.num_classes, in_chans=info.channels)
    params = sum(p.numel() for p in model.parameters())
    options = {k: spec[k] for k in ("epochs", "batch_size", "lr", "train_samples", "image_size", "data_dir",
                                    "device", "threads") if spec.get(k) is not None}
    if spec.get("data_options"):
        options["data_options"] = dict(spec["data_options"])
    results = fit(model, spec["dataset"], recipe=spec.get("recipe", "fast"), out=spec["out"], progress="none",
                  seed=spec.get("seed", 0), val_fraction=spec.get("val_fraction", 0.1), **options)
    val = results["val"]  # the held-out validation split: the reward. results["test"] is never read here.
    out = {"reward": float(val["top1"]), "val": {k: float(val[k]) for k in ("top1", "top5", "loss") if k in val},
           "params": params, "seconds": time.perf_counter() - t0}
    if spec.get("with_test"):  # only for the search's final choice, evaluated once at the end
        out["test"] = {k: float(v) for k, v in results["test"].items()}
    return out
