"""Tiny models and helpers shared by the training tests (not collected: no test_ prefix).

The models are plain nn.Modules handed to ``fit``; nothing is added to the registry.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import AuxOutput

# Small, fast runs: 256 training and 128 test images of scikit-learn's 8x8 digits.
DATASET = "digits"
SMALL = {"train_samples": 256, "test_samples": 128}


class TinyNet(nn.Module):
    """conv-bn-relu-dropout -> global pool -> linear, for 1x8x8 inputs."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, size: int = 8) -> None:
        super().__init__()
        self.in_chans, self.input_size, self.num_classes = in_chans, (in_chans, size, size), num_classes
        self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Dropout(0.1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class AuxNet(TinyNet):
    """TinyNet with one auxiliary head, returned as AuxOutput in training mode only."""

    aux_loss_weights = (0.3,)

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.aux = nn.Linear(8, self.num_classes)

    def forward(self, x):
        f = self.features(x)
        logits = self.fc(f)
        return AuxOutput(logits, (self.aux(f),)) if self.training else logits


class NaNAfter(TinyNet):
    """Returns NaN scores from the ``after``-th training forward pass on."""

    def __init__(self, after: int, **kw) -> None:
        super().__init__(**kw)
        self.after, self.calls = after, 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * float("nan")
        return out


class FlatNet(nn.Module):
    """A multilayer perceptron for 1x28x28 inputs only (784 features), whatever it is fed."""

    in_chans = 1
    input_size = (1, 8, 8)  # 64 values per image: its first layer cannot take them

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        return self.net(x)
