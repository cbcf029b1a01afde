"""The surface every cnnlab model shares.

``forward(x) = forward_head(forward_features(x))``; ``num_classes``, ``num_features``
(the width of the features the classifier reads), ``in_chans`` and
``reset_classifier(n)``. Models with auxiliary classifiers return an
:class:`AuxOutput` in training mode only and declare ``aux_loss_weights``.

The head methods have defaults for the common shape: the classifier is the submodule
named by ``classifier_name``, and ``forward_head`` is global pool -> flatten ->
dropout (if any) -> classifier. A model whose head looks different overrides them.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["CnnModel", "AuxOutput", "InputSizeError", "check_num_classes", "fresh_class_layer"]


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


def fresh_class_layer(old: nn.Module, num_classes: int) -> nn.Module:
    """A newly initialized layer like ``old`` (an ``nn.Linear`` or an ``nn.Conv2d`` class
    map) but with ``num_classes`` outputs, on ``old``'s device and with its dtype."""
    check_num_classes(num_classes)
    if not (isinstance(old, nn.Linear) or isinstance(old, nn.Conv2d) and old.groups == 1):
        raise TypeError(f"cannot build a fresh class layer like {type(old).__name__}; "
                        "expected nn.Linear or an ungrouped nn.Conv2d")
    like = dict(bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, **like)
    return nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding, old.dilation,
                     padding_mode=old.padding_mode, **like)


class CnnModel(nn.Module):
    """Base class of cnnlab's classifiers.

    Subclasses set ``num_classes``, ``num_features`` and ``in_chans`` in ``__init__``
    and implement ``forward_features``. ``min_input_size`` (smallest H and W that work)
    is set by the registry from the model's :class:`~cnnlab.registry.ModelInfo`; a
    subclass may set it itself.

    The head has defaults a subclass overrides where its head differs:

    * ``classifier_name``: the submodule that maps features to class scores, as an
      attribute name or a dotted path (``"classifier.1"``);
    * ``get_classifier()`` returns it; ``new_classifier(n)`` builds its replacement
      (by default the same kind of layer with ``n`` outputs, see :func:`fresh_class_layer`);
      ``reset_classifier(n)`` checks ``n``, swaps the new layer in and sets ``num_classes``
      (models with auxiliary classifiers extend it to reset those too);
    * ``forward_head`` runs the submodule ``global_pool``, flattens, applies the
      submodule ``head_drop`` where the model has one, and returns those features
      (``pre_logits``) or the classifier's output.
    """

    num_classes: int
    num_features: int
    in_chans: int
    min_input_size: int = 1
    aux_loss_weights: tuple[float, ...] = ()
    classifier_name: str = "fc"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)  # N x num_features
        drop = self._modules.get("head_drop")
        if drop is not None:
            x = drop(x)
        return x if pre_logits else self.get_classifier()(x)  # N x num_classes

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def new_classifier(self, num_classes: int) -> nn.Module:
        """A freshly initialized classifier for ``num_classes`` classes, to replace the current one."""
        return fresh_class_layer(self.get_classifier(), num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Give the model a fresh classifier for ``num_classes`` classes."""
        check_num_classes(num_classes)
        self.set_submodule(self.classifier_name, self.new_classifier(num_classes))
        self.num_classes = num_classes

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
