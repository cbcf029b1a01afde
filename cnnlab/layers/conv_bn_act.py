"""Convolution -> BatchNorm -> activation, with the submodule names ``conv`` and
``bn`` that torchvision's and timm's Inception/GoogLeNet blocks use, so state_dict
keys line up (``<block>.conv.weight``, ``<block>.bn.running_mean``)."""
from __future__ import annotations

from torch import nn

__all__ = ["ConvBnAct"]


class ConvBnAct(nn.Module):
    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = False,
        eps: float = 1e-5,
        act: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
