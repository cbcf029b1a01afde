"""Reading a checkpoint file safely and putting it into a cnnlab model.

PyTorch pickles are read with ``torch.load(weights_only=True)``, which unpickles only
tensors and plain containers: a file that would run code is refused. Safetensors files
hold no code at all. The state_dict must fit the model exactly (``strict``): a file
for another architecture is refused with the keys and shapes that differ.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cnnlab.weights.spec import Weights, WeightsError, get_weights

__all__ = ["read_state_dict", "load_weights", "build_pretrained", "freeze_backbone", "KEY_MAPS"]

log = logging.getLogger("cnnlab.weights")
_said: set[tuple] = set()


def _say_once(key: tuple, message: str) -> None:
    if key not in _said:
        _said.add(key)
        log.warning("%s", message)


# --------------------------------------------------------------------------- key maps

_DENSE_OLD = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _torchvision_densenet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # 'features.denseblock1.denselayer1.norm.1.weight' -> '...denselayer1.norm1.weight': module names
    # may no longer contain dots, but torchvision's DenseNet files predate that rule.
    out = {}
    for key, value in state.items():
        m = _DENSE_OLD.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


KEY_MAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "torchvision_densenet": _torchvision_densenet,
}


# --------------------------------------------------------------------------- reading


def read_state_dict(path: str | Path, fmt: str) -> dict[str, torch.Tensor]:
    """The tensors in a checkpoint file of format ``fmt`` ("pickle" or "safetensors")."""
    path = Path(path)
    if fmt not in ("pickle", "safetensors"):
        raise WeightsError(f"unknown weights format {fmt!r}: pickle (a torch.save file) or safetensors")
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    if fmt == "safetensors":
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"{path.name} is a safetensors file: install the safetensors package "
                               "(pip install 'cnnlab[weights]')") from None
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(f"refused to load {path}: it holds pickled objects other than tensors (a file that "
                           f"would run code when loaded); cnnlab loads weights with weights_only=True. {first}"
                           ) from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {first}") from None
    return _unwrap(state, path)


def _unwrap(state: Any, path: Path) -> dict[str, torch.Tensor]:
    # Some checkpoints nest the weights ({'state_dict': ...}, {'model': ...}) or carry DDP's 'module.'.
    for _ in range(2):
        if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            inner = next((state[k] for k in ("state_dict", "model", "state_dict_ema") if isinstance(state.get(k), dict)), None)
            if inner is not None:
                state = inner
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state_dict (a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


# --------------------------------------------------------------------------- loading


def _mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return None

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {few(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es), file vs model: {few(shapes)}")
    return "; ".join(parts)


def load_weights(model: nn.Module, w: Weights, path: str | Path) -> nn.Module:
    """Read ``path`` (the file of ``w``) and load it into ``model`` strictly."""
    state = read_state_dict(path, w.format)
    if w.key_map:
        state = KEY_MAPS[w.key_map](state)
    problem = _mismatch(model, state)
    if problem:
        raise WeightsError(f"{Path(path).name} does not fit {w.model} (weights for another architecture, or "
                           f"built with other arguments?): {problem}")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    return model


def build_pretrained(name: str, pretrained: bool | str, builder: Callable[..., nn.Module],
                     kwargs: dict[str, Any], *, download: bool = True) -> nn.Module:
    """``create_model(name, pretrained=..., **kwargs)``: build with the weights' class count
    and builder arguments, load the weights, then (if ``num_classes`` differs) put a new
    classifier on top, saying so once."""
    w = get_weights(name, pretrained)
    from cnnlab.weights.store import fetch_weights

    kwargs = dict(kwargs)
    num_classes = kwargs.pop("num_classes", w.num_classes)
    in_chans = kwargs.get("in_chans", 3)
    if in_chans != w.input_size[0]:
        raise WeightsError(f"{w.name} takes {w.input_size[0]}-channel input; in_chans={in_chans} cannot use them")
    path = fetch_weights(w, download=download)
    model = builder(num_classes=w.num_classes, **kwargs)
    load_weights(model, w, path)
    if num_classes != w.num_classes:
        model.reset_classifier(num_classes)
        head = getattr(model, "classifier_name", "the classifier")
        _say_once((name, w.tag, num_classes),
                  f"cnnlab: {w.name} classifies {w.num_classes} classes; its classifier ({head}) was replaced by a "
                  f"new, randomly initialized one for {num_classes} classes (a fine-tuning start)")
    model.pretrained_weights = w
    return model


def freeze_backbone(model: nn.Module) -> list[str]:
    """Freeze every parameter except the classifier's (and auxiliary heads', which also
    classify); returns the names of the parameters left trainable.

    BatchNorm running statistics still update in training mode; put the frozen part in
    eval mode yourself if you want them fixed.
    """
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if head is None:
        raise WeightsError(f"{type(model).__name__} names no classifier to keep trainable")
    keep = {id(p) for p in head.parameters()}
    for aux_name in ("aux1", "aux2", "AuxLogits", "aux_head"):
        aux = getattr(model, aux_name, None)
        if isinstance(aux, nn.Module):
            keep |= {id(p) for p in aux.parameters()}
    trainable = []
    for pname, p in model.named_parameters():
        p.requires_grad_(id(p) in keep)
        if id(p) in keep:
            trainable.append(pname)
    return trainable
