"""Squeeze-and-excitation (Hu et al. 2017): global average pool -> 1x1 conv C/r ->
ReLU -> 1x1 conv C -> sigmoid -> scale the channels. The FCs are 1x1 convolutions
with bias named ``fc1``/``fc2``, as in timm's SE-ResNets and the legacy SENets."""
from __future__ import annotations

from torch import nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, rd_channels: int | None = None):
        super().__init__()
        rd = rd_channels if rd_channels is not None else max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)  # N x C x 1 x 1
        s = self.gate(self.fc2(self.act(self.fc1(s))))
        return x * s
