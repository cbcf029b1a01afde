"""Optimizers and weight averaging for the trainer, built from ``torch.optim``.

A recipe names its optimizer (``sgd``, ``rmsprop``, ``adam``, ``adamw`` or the name of
any other ``torch.optim`` class, matched without regard to case); a Python caller may
instead pass a factory ``f(param_groups) -> torch.optim.Optimizer``. Parameters fall
into one or two groups: with ``decay_norm_and_bias=False`` biases and normalization
scales (every 1-D parameter) get no weight decay, as in Goyal et al. 2017
(arXiv:1706.02677). The trainer sets every group's learning rate each step from the
schedule, so the factory's own ``lr`` does not matter.

How recipe fields map onto ``torch.optim``:

    sgd      SGD(momentum=momentum, nesterov=nesterov)
    rmsprop  RMSprop(alpha=rms_decay, eps=eps, momentum=momentum)
             (TensorFlow's RMSProp, which Inception-v3/v4 and NASNet used, adds eps
             inside the square root and starts the mean square at one; PyTorch's adds
             eps outside and starts at zero. With eps = 1.0 both are dominated by eps
             early in training.)
    adam     Adam(betas=(momentum, beta2), eps=eps)
    adamw    AdamW(betas=(momentum, beta2), eps=eps)  (decoupled weight decay)
    other    CLASS(**optimizer_options)

Polyak averaging -- "a running average of the parameters" with which GoogLeNet and
Inception-v3 were evaluated -- is ``torch.optim.swa_utils.AveragedModel`` with an
exponential moving average of decay ``ema_decay`` over parameters and buffers.

Start-up: ``torch.optim``'s first ``step()`` imports ``torch._dynamo`` (0.85-1.5 s of
CPU measured on this project's 2-core VM). Importing it on a background thread while
the data loads was measured and did not help: a whole one-step LeNet-5 job took
1.93 +- 0.04 s with it and 1.90 +- 0.04 s without (4 fresh processes each, quiet
machine), so the import is left where torch.optim puts it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["BUILTIN_OPTIMIZERS", "optimizer_class", "param_groups", "build_optimizer", "make_ema", "ema_decay_at",
           "renorm_filters"]

BUILTIN_OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]


def _torch_optimizers() -> dict[str, type]:
    return {name.lower(): cls for name, cls in vars(torch.optim).items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}


def optimizer_class(name: str) -> type:
    """The ``torch.optim`` class called ``name`` (any case); ValueError listing the choices."""
    table = _torch_optimizers()
    cls = table.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of torch.optim's: "
                         f"{', '.join(sorted(cls.__name__ for cls in table.values()))}")
    return cls


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups, each with its own ``weight_decay``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # biases and norm scales are 1-D
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


def build_optimizer(model: nn.Module, recipe, factory: OptimizerFactory | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model``'s parameters (see the module docstring)."""
    groups = param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias)
    if factory is not None:
        opt = factory(groups)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory returned {type(opt).__name__}, not a torch.optim.Optimizer")
        return opt
    name = recipe.optimizer.lower()
    options = dict(recipe.optimizer_options)
    eps = {} if recipe.eps is None else {"eps": recipe.eps}
    if name == "sgd":
        kwargs = {"momentum": recipe.momentum, "nesterov": recipe.nesterov}
    elif name == "rmsprop":
        kwargs = {"alpha": recipe.rms_decay, "momentum": recipe.momentum, **eps}
    elif name in ("adam", "adamw"):
        kwargs = {"betas": (recipe.momentum, recipe.beta2), **eps}
    else:
        kwargs = {}
    cls = optimizer_class(name)
    try:
        return cls(groups, lr=recipe.lr, **{**kwargs, **options})
    except TypeError as exc:
        raise ValueError(f"optimizer {cls.__name__} does not take the options {sorted({**kwargs, **options})}: "
                         f"{exc}") from None


def ema_decay_at(decay: float, updates: int) -> float:
    """The averaging decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))``, the
    warm-up of TensorFlow's ExponentialMovingAverage with which the Inception models were
    averaged, so that a short run is not averaged with its random initialisation."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (Polyak averaging)."""
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        d = ema_decay_at(decay, int(n_averaged))
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, 1.0 - d)
            else:  # counters such as BatchNorm's num_batches_tracked follow the model
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


@torch.no_grad()
def renorm_filters(model: nn.Module, max_rms: float) -> None:
    """Scale every convolution filter whose RMS exceeds ``max_rms`` back to it (Zeiler &
    Fergus 2013, Sec. 3: filters "whose RMS value exceeds a fixed radius of 1e-1")."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight
            rms = w.square().mean(dim=tuple(range(1, w.ndim)), keepdim=True).sqrt()
            w.mul_(torch.where(rms > max_rms, max_rms / rms, torch.ones_like(rms)))
