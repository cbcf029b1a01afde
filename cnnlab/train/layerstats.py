"""Per-layer statistics of a run as it trains (``cnnlab train --layer-stats N``), in ``layers.jsonl``.

Every N training steps, at the start of the run and at the end of every epoch, the
trainer records for each weight layer (``nn.Conv2d``, ``nn.Linear`` and any other module
holding its own weight matrices or kernels, such as LeNet-5's partial C3; at most
:data:`MAX_LAYERS`, evenly spread over the depth, the others named in the meta record):

* its weights' mean, standard deviation and L2 norm, and the L2 norm of their gradient
  (the last step's; none before the first step or under fp16 loss scaling);
* the mean, standard deviation, fraction of exact zeros and fraction of values <= 0 of
  its output on one fixed batch of held-out images (the validation split, else the
  test set), measured in an evaluation pass (``model.eval()``, ``torch.no_grad``,
  forward hooks), after which every module's training flag is put back.

At the start and at each epoch's end it also records the first convolution's filters
(scaled to 0-255) and the top-3 predictions for 8 fixed held-out images (one per class
where it can), whose pixels are in the meta record.

Nothing here changes the training: the evaluation pass draws no random numbers (and
runs inside :func:`torch.random.fork_rng` with Python's ``random`` state saved all the
same), updates no BatchNorm statistics, and leaves no gradients; a run with the option
trains to the same weights, bit for bit, as one without it (tested). The time it takes
is recorded (``seconds``) and left out of the epoch's training time and throughput.

Records (one JSON object per line, flushed, repaired on resume as ``metrics.jsonl`` is):
``layers_meta`` (once per process), ``layers``, ``filters``, ``predictions``; each of
the last three carries ``epoch`` (the epoch being trained, 0 for the start) and ``step``.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train.trackers import JsonlTracker

__all__ = ["LayerStats", "LayersJsonl", "select_layers", "layer_weights", "MAX_LAYERS", "BATCH", "IMAGES", "TOP_K",
           "STATS", "FILE"]

FILE = "layers.jsonl"
MAX_LAYERS = 64      # layers recorded at most (evenly spread over the depth)
BATCH = 64           # images in the fixed batch the activations are measured on
IMAGES = 8           # held-out images whose top-k predictions are shown
TOP_K = 3
MAX_FILTERS = 256    # first-layer filters kept
MAX_IMAGE_SIDE = 64  # the shown images are pooled down to at most this side
STATS = ("weight_mean", "weight_std", "weight_norm", "grad_norm", "act_mean", "act_std", "act_zeros", "act_nonpos")


class LayersJsonl(JsonlTracker):
    """``layers.jsonl``: on resume, every record after the checkpoint's epoch goes (the
    resumed run records those epochs again), and so does the old meta record."""

    FILE = FILE

    @staticmethod
    def _dropped_on_resume(record: dict[str, Any], resume_epoch: int) -> bool:
        epoch = record.get("epoch")
        return record.get("kind") == "layers_meta" or (isinstance(epoch, int) and epoch > resume_epoch)


def layer_weights(module: nn.Module) -> list[torch.Tensor]:
    """The weights of a layer: its own parameters with two or more dimensions (a conv's
    kernel, a linear layer's matrix; all of a partial convolution's kernels)."""
    return [p for p in module.parameters(recurse=False) if p.dim() >= 2]


def select_layers(model: nn.Module, cap: int = MAX_LAYERS) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """(recorded layers, names left out): every conv / linear / weight-holding module in
    ``named_modules`` order, at most ``cap`` of them evenly spread (first and last kept)."""
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) or (n and layer_weights(m))]
    if len(layers) <= cap:
        return layers, []
    keep = sorted({round(i * (len(layers) - 1) / (cap - 1)) for i in range(cap)})
    kept = set(keep)
    return [layers[i] for i in keep], [layers[i][0] for i in range(len(layers)) if i not in kept]


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@contextlib.contextmanager
def _side_pass(model: nn.Module, device: torch.device):
    """An evaluation pass beside training: eval mode and no_grad inside, every module's
    training flag and every random generator as they were afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    python_state = random.getstate()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"), torch.no_grad():
            model.eval()
            yield
    finally:
        for m, flag in flags:
            m.training = flag
        random.setstate(python_state)


def _fixed_indices(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``0..n-1`` (no random draw)."""
    if n <= count:
        return list(range(n))
    return sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})


def _one_per_class(labels: list[int], count: int) -> list[int]:
    """The first image of each class (classes in order), then the next images, ``count`` in all."""
    first: dict[int, int] = {}
    for i, y in enumerate(labels):
        first.setdefault(y, i)
    chosen = [first[c] for c in sorted(first)][:count]
    taken = set(chosen)
    chosen += [i for i in range(len(labels)) if i not in taken][: count - len(chosen)]
    return sorted(chosen)


def _display(x: torch.Tensor) -> dict[str, Any]:
    """One input image (C x H x W, normalised) as 0-255 pixels for the page: stretched to
    its own range, pooled to at most MAX_IMAGE_SIDE, grey unless it has 3 channels."""
    x = x.detach().float().cpu()
    if x.shape[0] not in (1, 3):
        x = x.mean(dim=0, keepdim=True)
    h, w = x.shape[1:]
    if max(h, w) > MAX_IMAGE_SIDE:
        scale = MAX_IMAGE_SIDE / max(h, w)
        x = F.adaptive_avg_pool2d(x[None], (max(1, round(h * scale)), max(1, round(w * scale))))[0]
    lo, hi = float(x.min()), float(x.max())
    v = torch.full_like(x, 128.0) if hi <= lo else (x - lo) * (255.0 / (hi - lo))
    return {"shape": list(x.shape), "pixels": v.round().clamp(0, 255).to(torch.uint8).flatten().tolist()}


def filters_record(weight: torch.Tensor) -> dict[str, Any]:
    """A first convolution's kernels (out x in x kh x kw) as 0-255 values: at most
    MAX_FILTERS of them, kept as they are with 1 or 3 input channels and averaged over
    the channels otherwise; scaled by the min and max of everything shown."""
    w = weight.detach().float().cpu()[:MAX_FILTERS]
    channels = "as is"
    if w.shape[1] not in (1, 3):
        w = w.mean(dim=1, keepdim=True)
        channels = f"mean of {weight.shape[1]} input channels"
    lo, hi = float(w.min()), float(w.max())
    v = torch.full_like(w, 128.0) if hi <= lo else (w - lo) * (255.0 / (hi - lo))
    return {"shape": list(w.shape), "filters_total": int(weight.shape[0]), "channels": channels,
            "range": [_num(lo), _num(hi)], "values": v.round().clamp(0, 255).to(torch.uint8).flatten().tolist()}


class LayerStats:
    """The recorder one run keeps (main process only); see the module's docstring."""

    def __init__(self, model: nn.Module, data, input_size, *, every: int, device: torch.device, out: Path,
                 precision: str = "fp32", channels_last: bool = False, seed: int = 0, resume_epoch: int | None = None,
                 step: int = 0) -> None:
        from cnnlab.data import make_loader

        self.model, self.every, self.device = model, int(every), device
        self.precision, self.channels_last = precision, channels_last
        self.seconds = 0.0  # spent in after_step since the last pop_seconds()
        self.layers, self.omitted = select_layers(model)
        self.first_conv = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        held, source = (data.val, "validation") if data.val is not None else (data.test, "test")
        self.source = source
        self.classes = list(data.classes) or [str(i) for i in range(data.num_classes)]
        kw = dict(train=False, device=device, input_size=tuple(input_size), seed=seed)
        labels = [int(v) for v in held.labels.tolist()]
        self.batch_indices = _fixed_indices(len(labels), BATCH)
        self.image_indices = _one_per_class(labels, IMAGES)
        with _side_pass(model, device):  # loading draws nothing either, but make sure
            self.x, _ = next(iter(make_loader(held.subset(self.batch_indices), batch_size=len(self.batch_indices), **kw)))
            self.images, self.image_labels = next(iter(make_loader(held.subset(self.image_indices),
                                                                   batch_size=len(self.image_indices), **kw)))
        if channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        resumed = resume_epoch is not None
        if not resumed:
            (Path(out) / FILE).unlink(missing_ok=True)  # a new run: nothing before it counts
        self.file = LayersJsonl(out, resume_epoch if resumed else None)
        self.file.log(self._meta(step))
        if not resumed:
            self._record(0, step, "start", epoch_end=True)

    # -- what the trainer calls ---------------------------------------------------------------

    def after_step(self, epoch: int, step: int, last_in_epoch: bool) -> None:
        """After optimizer step ``step`` of epoch ``epoch`` (1-based): a record every N steps
        (the epoch's last step is recorded by :meth:`end_epoch`)."""
        if step % self.every == 0 and not last_in_epoch:
            self.seconds += self._record(epoch, step, "step")

    def end_epoch(self, epoch: int, step: int) -> None:
        """At the end of epoch ``epoch`` (1-based): the layers, the filters, the predictions."""
        self._record(epoch, step, "epoch", epoch_end=True)

    def pop_seconds(self) -> float:
        """The seconds :meth:`after_step` took since the last call (the trainer leaves them
        out of the epoch's training time)."""
        s, self.seconds = self.seconds, 0.0
        return s

    def close(self) -> None:
        self.file.close()

    # -- the records ------------------------------------------------------------------------------

    def _meta(self, step: int) -> dict[str, Any]:
        images = []
        for i, (x, y) in enumerate(zip(self.images, self.image_labels.tolist())):
            images.append({"index": self.image_indices[i], "label": int(y), **_display(x)})
        return {
            "kind": "layers_meta", "every": self.every, "step": step, "stats": list(STATS),
            "layers": [{"name": n, "type": type(m).__name__,
                        "weight_shapes": [list(p.shape) for p in layer_weights(m)],
                        "weights": sum(p.numel() for p in layer_weights(m))} for n, m in self.layers],
            "omitted": self.omitted, "max_layers": MAX_LAYERS,
            "batch": {"source": self.source, "size": len(self.batch_indices), "indices": self.batch_indices},
            "first_conv": self.first_conv[0] if self.first_conv else None,
            "images": images, "classes": self.classes, "k": TOP_K,
            "notes": {"std": "torch.std (unbiased)", "act_zeros": "fraction of the layer's outputs exactly 0",
                      "act_nonpos": "fraction of its outputs <= 0 (what a following ReLU zeroes)",
                      "grad_norm": "L2 norm of the weights' gradient from the last step (none under fp16)",
                      "activations": f"the layer's output on {len(self.batch_indices)} fixed {self.source} images, "
                                     "model in eval mode"},
        }

    def _record(self, epoch: int, step: int, at: str, epoch_end: bool = False) -> float:
        """Writes the records; returns the seconds it took."""
        t0 = time.perf_counter()
        stats = {k: [] for k in STATS}
        outputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(self.layers))}

        def keep(i):
            def hook(module, inputs, output):
                if isinstance(output, torch.Tensor):
                    outputs[i].append(output.detach().float().flatten())
            return hook

        from cnnlab.train.loop import autocast

        logits = None
        with _side_pass(self.model, self.device), autocast(self.device, self.precision):
            hooks = [m.register_forward_hook(keep(i)) for i, (_, m) in enumerate(self.layers)]
            try:
                self.model(self.x)
            finally:
                for h in hooks:
                    h.remove()
            if epoch_end:
                logits = self.model(self.images)
        fp16 = self.precision == "fp16"
        for i, (_, m) in enumerate(self.layers):
            ws = layer_weights(m)
            w = torch.cat([p.detach().float().flatten() for p in ws])
            stats["weight_mean"].append(_num(float(w.mean())))
            stats["weight_std"].append(_num(float(w.std())) if w.numel() > 1 else None)
            stats["weight_norm"].append(_num(float(w.norm())))
            grads = [p.grad for p in ws if p.grad is not None]
            stats["grad_norm"].append(None if fp16 or not grads else
                                      _num(float(torch.cat([g.detach().float().flatten() for g in grads]).norm())))
            out = torch.cat(outputs[i]) if outputs[i] else None
            if out is None or out.numel() == 0:
                for k in ("act_mean", "act_std", "act_zeros", "act_nonpos"):
                    stats[k].append(None)
                continue
            stats["act_mean"].append(_num(float(out.mean())))
            stats["act_std"].append(_num(float(out.std())) if out.numel() > 1 else None)
            stats["act_zeros"].append(int((out == 0).sum()) / out.numel())
            stats["act_nonpos"].append(int((out <= 0).sum()) / out.numel())
        seconds = time.perf_counter() - t0
        self.file.log({"kind": "layers", "epoch": epoch, "step": step, "at": at, **stats, "seconds": seconds})
        if epoch_end:
            if self.first_conv is not None:
                self.file.log({"kind": "filters", "epoch": epoch, "step": step, "layer": self.first_conv[0],
                               **filters_record(self.first_conv[1].weight)})
            if isinstance(logits, tuple) and hasattr(logits, "logits"):
                logits = logits.logits
            probs = torch.softmax(logits.float(), dim=1)
            top = probs.topk(min(TOP_K, probs.shape[1]), dim=1)
            items = [{"index": idx, "label": int(y),
                      "top": [[int(c), _num(float(p))] for c, p in zip(top.indices[j].tolist(), top.values[j].tolist())]}
                     for j, (idx, y) in enumerate(zip(self.image_indices, self.image_labels.tolist()))]
            self.file.log({"kind": "predictions", "epoch": epoch, "step": step, "k": TOP_K, "items": items})
        return time.perf_counter() - t0
