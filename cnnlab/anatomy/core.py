"""``analyze``: a model taken apart layer by layer, without running it on data.

    >>> import cnnlab
    >>> a = cnnlab.analyze("vgg16", batch_size=64)
    >>> a.totals["macs"], a.totals["forward_values_with_input"]
    >>> print(a.table(depth=2))
    >>> a.to_json(), a.to_csv(), a.to_markdown()

The model is traced on the meta device: a model given by name is built there, and
a user's module keeps its weights but is called with meta stand-ins of the same
shapes (``torch.func.functional_call``), so nothing is copied and no activation is
allocated.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

import torch
from torch import nn

from cnnlab.anatomy.ops import KINDS
from cnnlab.anatomy.report import Anatomy
from cnnlab.anatomy.trace import aggregate, trace_model

__all__ = ["analyze", "parse_input_size", "OPTIMIZER_STATES"]

# Optimizer state per trainable parameter, in parameter-sized tensors.
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "sgd-momentum": 1, "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2}


def parse_input_size(value: Any, channels: int = 3) -> tuple[int, int, int]:
    """``224`` -> ``(channels, 224, 224)``; ``(3, 224, 224)``, ``"3x224x224"``,
    ``"3,224,224"`` -> ``(3, 224, 224)``; ``(224, 192)``/``"224x192"`` -> ``(channels, 224, 192)``."""
    original = value
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s]+", value.strip().lower()) if p]
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"input size {original!r} is not a size: give H (square), HxW or CxHxW, e.g. 224 or 3x224x224") from None
        if len(value) == 1:
            value = value[0]
    if isinstance(value, bool):
        raise ValueError(f"input size must be an int or (C, H, W), got {original!r}")
    if isinstance(value, int):
        value = (channels, value, value)
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise ValueError(f"input size must be an int (square) or (C, H, W), got {original!r}")
    if len(value) == 2:
        value = (channels, *value)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"input size must be positive integers (C, H, W), got {original!r}")
    return tuple(value)


def _resolve(model_or_name, model_kwargs: dict, dtype: torch.dtype):
    """(model, label, default input size or None, is_meta)."""
    if isinstance(model_or_name, str):
        from cnnlab.registry import create_model, model_info

        info = model_info(model_or_name)  # UnknownModelError (a ValueError) with suggestions
        with torch.device("meta"):
            model = create_model(model_or_name, **model_kwargs)
        model.to(dtype=dtype)
        size = info.input_size
        if "in_chans" in model_kwargs:
            size = (model_kwargs["in_chans"], *size[1:])
        return model, model_or_name, size
    if isinstance(model_or_name, nn.Module):
        if model_kwargs:
            raise TypeError("model keyword arguments only apply to a model given by name")
        info = getattr(model_or_name, "model_info", None)
        label = getattr(info, "name", None) or type(model_or_name).__name__
        size = tuple(info.input_size) if info is not None else None
        if size is not None and getattr(model_or_name, "in_chans", None):
            size = (model_or_name.in_chans, *size[1:])
        return model_or_name, label, size
    raise TypeError(f"analyze() takes a model name or an nn.Module, got {type(model_or_name).__name__}")


def _meta_call(model: nn.Module, dtype: torch.dtype):
    """A function ``call(x, param_storages)`` that runs ``model`` on meta tensors."""
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device.type == "meta" for t in tensors):
        def call(x, param_storages):
            for p in model.parameters():
                param_storages.add(p.untyped_storage()._cdata)
            return model(x)
        return call

    from torch.func import functional_call

    def stand_in(t: torch.Tensor, grad: bool) -> torch.Tensor:
        kind = dtype if t.is_floating_point() else t.dtype
        return torch.empty(t.shape, dtype=kind, device="meta").requires_grad_(grad and t.is_floating_point())

    # made here, outside the traced pass, so that they do not count as memory the pass allocates
    state = {k: stand_in(p, p.requires_grad) for k, p in model.named_parameters()}
    storages = {t.untyped_storage()._cdata for t in state.values()}
    state.update({k: stand_in(b, False) for k, b in model.named_buffers()})

    def call(x, param_storages):
        param_storages.update(storages)
        try:
            return functional_call(model, state, (x,))
        except RuntimeError as exc:
            if "meta" in str(exc) and "device" in str(exc):
                raise RuntimeError(
                    f"{type(model).__name__} keeps a tensor that is neither a parameter nor a buffer, so it "
                    f"cannot be traced on the meta device ({exc}); register it as a buffer"
                ) from exc
            raise
    return call


def _set_mode(model: nn.Module, train: bool) -> dict:
    flags = {m: m.training for m in model.modules()}
    model.train(train)
    return flags


def analyze(
    model_or_name: str | nn.Module,
    input_size: Any = None,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    *,
    count: Iterable[str] = ("conv", "linear"),
    mode: str = "eval",
    optimizer: str = "momentum",
    training_estimate: bool = True,
    measure: bool = False,
    **model_kwargs: Any,
) -> Anatomy:
    """Take a model apart layer by layer, on the meta device (no data, no activations).

    Args:
        model_or_name: a registered model name (built on the meta device) or an
            ``nn.Module`` (its weights are neither copied nor used).
        input_size: an int (square; channels from the model, 3 by default) or
            ``(C, H, W)``; defaults to the registered model's input size.
        batch_size: images per batch; per-layer figures are given per image, totals
            both per image and per batch.
        dtype: the dtype whose sizes the memory figures use.
        count: which kinds of ops the ``macs`` figure includes (any of ``conv``,
            ``linear``, ``norm``, ``act``, ``pool``, ``eltwise``); every kind is always
            listed separately under ``ops``.
        mode: ``"eval"`` (default; no auxiliary heads) or ``"train"``.
        optimizer: optimizer whose state the training estimate includes: ``sgd``
            (none), ``momentum`` (one buffer per parameter), ``adam``/``adamw`` (two).
        training_estimate: also trace a train-mode pass to count the activations
            autograd keeps for backward.
        measure: also run a real forward and forward+backward pass and measure their
            peak memory (a model given by name is then built with real weights).
        model_kwargs: passed to the builder of a model given by name (``num_classes``...).
    """
    count = tuple(k.strip() for k in count.split(",")) if isinstance(count, str) else tuple(count)  # "conv,linear"
    bad = [k for k in count if k not in KINDS]
    if bad or not count:
        raise ValueError(f"count must be a non-empty selection of {', '.join(KINDS)}, got {list(count)!r}")
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    if optimizer.lower() not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, got {optimizer!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")

    model, label, default_size = _resolve(model_or_name, model_kwargs, dtype)
    channels = getattr(model, "in_chans", None) or 3
    if input_size is None:
        if default_size is None:
            raise ValueError(f"input_size is required for {label} (it has no registered default): e.g. 224 or (3, 224, 224)")
        input_size = default_size
    c, h, w = parse_input_size(input_size, channels)
    x = torch.empty(batch_size, c, h, w, dtype=dtype, device="meta")
    call = _meta_call(model, dtype)

    flags = _set_mode(model, mode == "train")
    try:
        # eval: an inference pass (no autograd); train: with autograd, as in training
        with torch.set_grad_enabled(mode == "train"):
            try:
                trace = trace_model(model, call, x)
            except (RuntimeError, IndexError) as exc:  # a shape error deep in the model: say where, in one line
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"{label} cannot run on a {'x'.join(map(str, x.shape))} input: {first}") from exc
        train_trace = None
        if training_estimate:
            if mode == "train":
                train_trace = trace
            else:
                model.train(True)
                try:
                    with torch.enable_grad():
                        train_trace = trace_model(model, call, x)
                except Exception as exc:  # the eval figures stand; say why this one is missing
                    train_trace = f"train-mode trace failed: {exc}"
    finally:
        for m, flag in flags.items():
            m.training = flag

    aggregate(trace.rows)
    params = list(model.parameters())
    measured = None
    if measure:
        from cnnlab.anatomy.measure import measure_peak

        real = model
        if isinstance(model_or_name, str):
            from cnnlab.registry import create_model

            real = create_model(model_or_name, **model_kwargs).to(dtype=dtype)
        measured = measure_peak(real, [batch_size, c, h, w], dtype)
    return Anatomy.from_trace(
        label, trace, batch_size=batch_size, dtype=dtype, count=count, mode=mode,
        params_total=sum(p.numel() for p in params),
        trainable_total=sum(p.numel() for p in params if p.requires_grad),
        optimizer=optimizer.lower(), optimizer_states=OPTIMIZER_STATES[optimizer.lower()],
        train_trace=train_trace, measured=measured,
    )

