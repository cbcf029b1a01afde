"""The surface every cnnlab model shares.

``forward(x) = forward_head(forward_features(x))``; ``num_classes``, ``num_features``
(the width of the features the classifier reads), ``in_chans`` and
``reset_classifier(n)``. Models with auxiliary classifiers return an
:class:`AuxOutput` in training mode only and declare ``aux_loss_weights``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["CnnModel", "AuxOutput", "InputSizeError", "check_num_classes"]


class InputSizeError(ValueError):
    """An input a model cannot take: wrong rank, wrong channel count, or too small."""


class AuxOutput(NamedTuple):
    """Training-mode output of a model with auxiliary classifiers.

    ``aux`` holds the auxiliary logits in the order of the model's
    ``aux_loss_weights``; the training loss is
    ``CE(logits) + sum(w * CE(a) for w, a in zip(model.aux_loss_weights, aux))``.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes


class CnnModel(nn.Module):
    """Base class of cnnlab's classifiers.

    Subclasses set ``num_classes``, ``num_features`` and ``in_chans`` in ``__init__``
    and implement ``forward_features``, ``forward_head`` and ``reset_classifier``.
    ``min_input_size`` (smallest H and W that work) is set by the registry from the
    model's :class:`~cnnlab.registry.ModelInfo`; a subclass may set it itself.
    """

    num_classes: int
    num_features: int
    in_chans: int
    min_input_size: int = 1
    aux_loss_weights: tuple[float, ...] = ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputSizeError` for an input this model cannot take."""
        name = getattr(getattr(self, "model_info", None), "name", type(self).__name__)
        if x.dim() != 4:
            raise InputSizeError(f"{name} expects a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{name} expects {self.in_chans} input channel(s), got {x.shape[1]} (input shape "
                f"{tuple(x.shape)}); build it with in_chans={x.shape[1]} to change that"
            )
        h, w = x.shape[-2], x.shape[-1]
        if h < self.min_input_size or w < self.min_input_size:
            raise InputSizeError(
                f"{name} needs inputs of at least {self.min_input_size}x{self.min_input_size} pixels, "
                f"got {h}x{w}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))
