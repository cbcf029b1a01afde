"""Drop path: drop a whole residual branch per sample (timm's ``DropPath`` semantics).

Used by NASNet's cells and anywhere a branch is dropped per *sample*. The residual
family's stochastic depth, which drops a block for the whole mini-batch and skips
its computation, lives with the residual blocks.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["drop_path", "DropPath"]


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True) -> torch.Tensor:
    """Zero each sample of ``x`` with probability ``drop_prob`` (training only).

    Kept samples are divided by the keep probability when ``scale_by_keep`` so the
    expectation is unchanged and evaluation needs no rescaling.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    if scale_by_keep and keep > 0.0:
        mask.div_(keep)
    return x * mask


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"
