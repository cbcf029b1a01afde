"""Local response normalization with the constants written as the papers write them.

AlexNet (Krizhevsky et al. 2012, section 3.3) normalizes each activation by its
neighbours across ``n`` adjacent channels:

    b_i = a_i / (k + alpha * sum_{j in window(i)} a_j^2) ** beta

PyTorch's ``nn.LocalResponseNorm`` averages the squares instead of summing them
(its ``alpha`` is divided by ``size``), so the paper's ``alpha = 1e-4`` with
``n = 5`` is ``alpha = 5e-4`` there. This class takes the paper's ``alpha`` and does
the conversion, so model files can quote the paper's numbers unchanged. Caffe's
LRN layer also averages: a Caffe prototxt's ``alpha`` must be divided by
``local_size`` before it is passed here.

Used by AlexNet, ZFNet and the paper form of GoogLeNet. It has no parameters.
"""
from __future__ import annotations

from torch import nn

__all__ = ["LocalResponseNorm"]


class LocalResponseNorm(nn.LocalResponseNorm):
    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive integer, got {size!r}")
        super().__init__(size, alpha=alpha * size, beta=beta, k=k)
        self.paper_alpha = alpha

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.paper_alpha:g} (paper, summed), beta={self.beta}, k={self.k}"
