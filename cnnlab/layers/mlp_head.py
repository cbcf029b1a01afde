"""The three fully connected layers that close AlexNet, ZFNet and VGG.

``Linear -> ReLU -> Linear -> ReLU -> Linear`` with dropout 0.5 on the two hidden
layers, as an ``nn.Sequential`` whose indices are torchvision's, so state_dict keys
(``classifier.1.weight`` in AlexNet, ``classifier.0.weight`` in VGG) line up.
AlexNet's torchvision layout puts each dropout *before* a hidden Linear (it drops
the inputs of fc6 and fc7), VGG's *after* a hidden ReLU (it drops the inputs of fc7
and fc8); ``dropout_first`` chooses between the two.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["MlpHead"]


class MlpHead(nn.Sequential):
    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float = 0.5,
                 dropout_first: bool = False):
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(2):
            linear = [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            layers += [nn.Dropout(dropout), *linear] if dropout_first else [*linear, nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(hidden, num_classes))
        super().__init__(*layers)
        self.hidden = hidden

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden features the last Linear reads: N x hidden."""
        for layer in list(self)[:-1]:
            x = layer(x)
        return x
