"""Padding for convolutions and pools: PyTorch's symmetric padding or TensorFlow's "SAME".

``pad_type="symmetric"`` pads ``((stride - 1) + dilation * (kernel - 1)) // 2`` on each
side, the usual PyTorch choice. ``pad_type="same"`` reproduces TensorFlow's ``SAME``
padding: the output has ``ceil(size / stride)`` pixels and the padding that needs goes
mostly to the bottom/right. For stride 1 and an odd kernel the two agree, so only
strided layers pay for the padding computed at run time (shapes only, so it traces on
the meta device). Models ported from TensorFlow checkpoints (NASNet) need ``"same"``
to compute the same function on even-sized feature maps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PAD_TYPES", "pad_same", "make_conv2d", "make_pool2d", "Conv2dSame", "Pool2dSame"]

PAD_TYPES = ("symmetric", "same")


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def check_pad_type(pad_type: str) -> str:
    if pad_type not in PAD_TYPES:
        raise ValueError(f"pad_type must be one of {PAD_TYPES}, got {pad_type!r}")
    return pad_type


def _symmetric(kernel: int, stride: int, dilation: int) -> int:
    return ((stride - 1) + dilation * (kernel - 1)) // 2


def _same_total(size: int, kernel: int, stride: int, dilation: int) -> int:
    out = -(-size // stride)  # ceil
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def pad_same(x: torch.Tensor, kernel, stride, dilation=1, value: float = 0.0) -> torch.Tensor:
    """Pad ``x`` (N, C, H, W) the way TensorFlow's SAME padding does (extra pixel bottom/right)."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    ph = _same_total(x.shape[-2], kh, sh, dh)
    pw = _same_total(x.shape[-1], kw, sw, dw)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def _static_ok(kernel, stride, dilation) -> bool:
    # SAME padding equals a fixed symmetric padding when the stride is 1 and the
    # dilated kernel has an odd extent.
    return all(s == 1 and (d * (k - 1)) % 2 == 0 for k, s, d in zip(kernel, stride, dilation))


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow SAME padding worked out from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return super().forward(x)


def make_conv2d(in_chs: int, out_chs: int, kernel, stride=1, dilation=1, groups: int = 1,
                pad_type: str = "symmetric", bias: bool = False) -> nn.Conv2d:
    """A bias-free 2-D convolution padded per ``pad_type`` (kernel/stride may be (h, w))."""
    kernel, stride, dilation = _pair(kernel), _pair(stride), _pair(dilation)
    if check_pad_type(pad_type) == "same" and not _static_ok(kernel, stride, dilation):
        return Conv2dSame(in_chs, out_chs, kernel, stride=stride, padding=0, dilation=dilation,
                          groups=groups, bias=bias)
    padding = tuple(_symmetric(k, s, d) for k, s, d in zip(kernel, stride, dilation))
    return nn.Conv2d(in_chs, out_chs, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, bias=bias)


class Pool2dSame(nn.Module):
    """Max or average pooling with TensorFlow SAME padding worked out from the input size.

    The padded border is filled with -inf for max pooling and with zeros for average
    pooling, and those zeros are counted in the average. TensorFlow itself leaves them
    out; timm's port of NASNet (and so its checkpoints) counts them, and we follow timm
    so that its ``nasnetalarge`` weights compute the same function here.
    """

    def __init__(self, kind: str, kernel: int, stride: int):
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
            return F.max_pool2d(x, self.kernel, self.stride)
        x = pad_same(x, self.kernel, self.stride)
        return F.avg_pool2d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel_size={self.kernel}, stride={self.stride}, padding=SAME"


def make_pool2d(kind: str, kernel: int, stride: int = 1, pad_type: str = "symmetric") -> nn.Module:
    """``kind`` "max" or "avg"; average pools leave padding out of the mean where it is static."""
    if kind not in ("max", "avg"):
        raise ValueError(f"pool kind must be 'max' or 'avg', got {kind!r}")
    if check_pad_type(pad_type) == "same" and not _static_ok((kernel,), (stride,), (1,)):
        return Pool2dSame(kind, kernel, stride)
    padding = _symmetric(kernel, stride, 1)
    if kind == "max":
        return nn.MaxPool2d(kernel, stride, padding)
    return nn.AvgPool2d(kernel, stride, padding, count_include_pad=False)
