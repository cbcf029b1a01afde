"""A generic NASNet search-space cell built from a genotype (Zoph et al. 2017, arXiv:1707.07012).

A cell reads two hidden states, ``h0`` (the previous cell's output) and ``h1`` (the
output of the cell before that), and has B blocks. Each block picks two inputs (h0,
h1, or the output of an earlier block), applies one operation to each and combines
the two results by addition or concatenation; the cell's output concatenates the
states the genotype lists. A reduction cell applies its operations with stride 2 to
h0 and h1 (never to block outputs, which are already at the reduced size). NASNet-A's
published normal and reduction cells are two :class:`Genotype` values
(``cnnlab.models.nasnet``); an architecture search builds any sampled cell with the
same :class:`Cell`.

Module names follow timm's NASNet port (``conv_1x1``, ``conv_prev_1x1``, ``path_1`` /
``path_2`` / ``final_path_bn``, ``comb_iter_<b>_left`` / ``_right``, ``separable_1`` /
``bn_sep_1`` ...) so a NASNet-A built from genotypes has timm's state_dict keys.

What the cell does with mismatched inputs (as the NASNet reference code does):

* ``h0`` always passes ReLU -> 1x1 conv -> BN to ``filters`` channels (``conv_1x1``).
* ``h1`` at twice h0's resolution (the cell right after a reduction): ReLU then a
  *factorized reduction*: two 1x1 convs of ``filters/2`` channels on the even and on
  the one-pixel-shifted odd pixels, concatenated, BN (``path_1``, ``path_2``,
  ``final_path_bn``). ``h1`` at h0's resolution with other channels: ReLU -> 1x1 conv
  -> BN (``conv_prev_1x1``). ``h1`` absent (the first cell after the stem): the cell
  reads its own raw input as ``h1``, and every op reading it adapts the channels.
* An op whose input has other channels than ``filters`` adapts them: separable convs
  change width in their first pointwise conv, pools and strided identities add a
  1x1 conv (+ BN).
* An input state concatenated into a reduction cell's output is brought to the
  output resolution (and width) by a factorized reduction (``reduce_state_<i>``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from cnnlab.layers.drop_path import drop_path
from cnnlab.layers.padding import check_pad_type, make_conv2d, make_pool2d

__all__ = [
    "OPS",
    "Block",
    "Genotype",
    "Cell",
    "ReluConvBn",
    "SeparableBranch",
    "FactorizedReduce",
    "random_genotype",
    "BN_EPS",
]

BN_EPS = 1e-3  # the NASNet reference code's batch-norm epsilon (TF-slim arg scope)


# --------------------------------------------------------------------------- operations


class ReluConvBn(nn.Module):
    """ReLU -> conv -> BN, the NASNet ordering (pre-activation)."""

    def __init__(self, in_chs: int, out_chs: int, kernel=1, stride=1, dilation: int = 1,
                 pad_type: str = "symmetric"):
        super().__init__()
        self.act = nn.ReLU()
        self.conv = make_conv2d(in_chs, out_chs, kernel, stride, dilation, pad_type=pad_type)
        self.bn = nn.BatchNorm2d(out_chs, eps=BN_EPS)

    def forward(self, x):
        return self.bn(self.conv(self.act(x)))


class ReluConvConvBn(nn.Module):
    """ReLU -> 1xk conv -> kx1 conv -> BN (the "1x3 then 3x1" / "1x7 then 7x1" ops)."""

    def __init__(self, in_chs: int, out_chs: int, k: int, stride: int = 1, pad_type: str = "symmetric"):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_1 = make_conv2d(in_chs, out_chs, (1, k), (1, stride), pad_type=pad_type)
        self.conv_2 = make_conv2d(out_chs, out_chs, (k, 1), (stride, 1), pad_type=pad_type)
        self.bn = nn.BatchNorm2d(out_chs, eps=BN_EPS)

    def forward(self, x):
        return self.bn(self.conv_2(self.conv_1(self.act(x))))


class SeparableConv(nn.Module):
    """Depthwise kxk conv (carrying the stride) followed by a pointwise 1x1 conv."""

    def __init__(self, in_chs: int, out_chs: int, k: int, stride: int, pad_type: str):
        super().__init__()
        self.depthwise_conv2d = make_conv2d(in_chs, in_chs, k, stride, groups=in_chs, pad_type=pad_type)
        self.pointwise_conv2d = make_conv2d(in_chs, out_chs, 1)

    def forward(self, x):
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class SeparableBranch(nn.Module):
    """(ReLU -> separable conv -> BN) twice; the first carries the stride and sets the width."""

    def __init__(self, in_chs: int, out_chs: int, k: int, stride: int = 1, pad_type: str = "symmetric"):
        super().__init__()
        self.act_1 = nn.ReLU()
        self.separable_1 = SeparableConv(in_chs, out_chs, k, stride, pad_type)
        self.bn_sep_1 = nn.BatchNorm2d(out_chs, eps=BN_EPS)
        self.act_2 = nn.ReLU()
        self.separable_2 = SeparableConv(out_chs, out_chs, k, 1, pad_type)
        self.bn_sep_2 = nn.BatchNorm2d(out_chs, eps=BN_EPS)

    def forward(self, x):
        x = self.bn_sep_1(self.separable_1(self.act_1(x)))
        return self.bn_sep_2(self.separable_2(self.act_2(x)))


class PoolBranch(nn.Module):
    """A pool, then (only when the widths differ) a 1x1 conv + BN to ``out_chs``."""

    def __init__(self, kind: str, k: int, in_chs: int, out_chs: int, stride: int, pad_type: str):
        super().__init__()
        self.pool = make_pool2d(kind, k, stride, pad_type)
        self.proj = None
        if in_chs != out_chs:
            self.proj = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs, eps=BN_EPS))

    def forward(self, x):
        x = self.pool(x)
        return x if self.proj is None else self.proj(x)


def _identity(in_chs: int, out_chs: int, stride: int, pad_type: str) -> nn.Module:
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return ReluConvBn(in_chs, out_chs, 1, stride, pad_type=pad_type)  # strided / widening identity


def _pool(kind: str, k: int) -> Callable[..., nn.Module]:
    return lambda i, o, s, p: PoolBranch(kind, k, i, o, s, p)


def _sep(k: int) -> Callable[..., nn.Module]:
    return lambda i, o, s, p: SeparableBranch(i, o, k, s, p)


# The paper's operation set. Each builder takes (in_chs, out_chs, stride, pad_type).
OPS: dict[str, Callable[[int, int, int, str], nn.Module]] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda i, o, s, p: ReluConvConvBn(i, o, 3, s, p),
    "conv_1x7_7x1": lambda i, o, s, p: ReluConvConvBn(i, o, 7, s, p),
    "dil_conv_3x3": lambda i, o, s, p: ReluConvBn(i, o, 3, s, dilation=2, pad_type=p),
    "avg_pool_3x3": _pool("avg", 3),
    "max_pool_3x3": _pool("max", 3),
    "max_pool_5x5": _pool("max", 5),
    "max_pool_7x7": _pool("max", 7),
    "conv_1x1": lambda i, o, s, p: ReluConvBn(i, o, 1, s, pad_type=p),
    "conv_3x3": lambda i, o, s, p: ReluConvBn(i, o, 3, s, pad_type=p),
    "sep_conv_3x3": _sep(3),
    "sep_conv_5x5": _sep(5),
    "sep_conv_7x7": _sep(7),
}


# ------------------------------------------------------------------ factorized reduction


class _SubsamplePath(nn.Module):
    """Every second pixel (from the first, or shifted by one pixel) -> 1x1 conv."""

    def __init__(self, in_chs: int, out_chs: int, shift: bool):
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x):
        if self.shift:
            # Drop the first row/column and pad a zero row/column at the end, so the
            # stride-2 sampling below picks the odd pixels (same output size).
            x = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.conv(x[:, :, ::2, ::2])


def _factorized(x: torch.Tensor, path_1: nn.Module, path_2: nn.Module, bn: nn.Module) -> torch.Tensor:
    return bn(torch.cat([path_1(x), path_2(x)], 1))


def _halves(out_chs: int) -> tuple[int, int]:
    return out_chs // 2, out_chs - out_chs // 2


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two shifted stride-2 1x1 convs, concat, BN."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        a, b = _halves(out_chs)
        self.path_1 = _SubsamplePath(in_chs, a, shift=False)
        self.path_2 = _SubsamplePath(in_chs, b, shift=True)
        self.final_path_bn = nn.BatchNorm2d(out_chs, eps=BN_EPS)

    def forward(self, x):
        return _factorized(x, self.path_1, self.path_2, self.final_path_bn)


# ------------------------------------------------------------------------------ genotype

H0, H1 = 0, 1  # state indices of the cell's inputs; block b's output is state 2 + b


@dataclass(frozen=True)
class Block:
    """One block: ``combine(op_left(state[left]), op_right(state[right]))``.

    States are numbered 0 = h0 (previous cell), 1 = h1 (the cell before), 2 + b =
    output of block b. ``combine`` is "add" or "concat".
    """

    left: int
    left_op: str
    right: int
    right_op: str
    combine: str = "add"


@dataclass(frozen=True)
class Genotype:
    """A cell: its blocks, the states concatenated into its output, and whether it reduces."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]
    reduction: bool = False

    def __post_init__(self):
        if not self.blocks:
            raise ValueError("a genotype needs at least one block")
        for b, blk in enumerate(self.blocks):
            for src, op in ((blk.left, blk.left_op), (blk.right, blk.right_op)):
                if not 0 <= src < 2 + b:
                    raise ValueError(f"block {b} reads state {src}; it can read h0 (0), h1 (1) "
                                     f"or an earlier block (2..{1 + b})")
                if op not in OPS:
                    raise ValueError(f"block {b}: unknown op {op!r}; known ops: {', '.join(OPS)}")
            if blk.combine not in ("add", "concat"):
                raise ValueError(f"block {b}: combine must be 'add' or 'concat', got {blk.combine!r}")
        n_states = 2 + len(self.blocks)
        if not self.concat or any(not 0 <= s < n_states for s in self.concat):
            raise ValueError(f"concat must list states in 0..{n_states - 1}, got {self.concat}")


def random_genotype(num_blocks: int = 5, reduction: bool = False, seed: int | None = None,
                    ops: tuple[str, ...] | None = None) -> Genotype:
    """A uniformly sampled cell of the search space (combine by add or concat).

    As in the paper, the output concatenates every state no block uses (the last block
    always counts as unused).
    """
    rng = random.Random(seed)
    names = tuple(ops or OPS)
    blocks = []
    for b in range(num_blocks):
        blocks.append(Block(rng.randrange(2 + b), rng.choice(names), rng.randrange(2 + b), rng.choice(names),
                            rng.choice(("add", "concat"))))
    used = {s for blk in blocks for s in (blk.left, blk.right)}
    concat = tuple(s for s in range(2 + num_blocks) if s not in used) or (1 + num_blocks,)
    return Genotype(tuple(blocks), concat, reduction)


# ---------------------------------------------------------------------------------- cell


class Cell(nn.Module):
    """One NASNet cell built from ``genotype``.

    Args:
        genotype: the cell's wiring.
        in_chs: channels of h0 (the previous cell's output).
        prev_chs: channels of h1, or ``None`` when the cell has no h1 of its own and
            reads its raw input as h1 (the first cell after a stem).
        filters: the width every op outputs.
        prev_reduced: h1 has twice h0's resolution (the cell follows a reduction).
        pad_type: "symmetric" or "same" (TensorFlow SAME, for TF/timm checkpoints).
        drop_prob: drop-path probability for the outputs of non-identity ops (train only).
    """

    def __init__(self, genotype: Genotype, in_chs: int, prev_chs: int | None, filters: int,
                 prev_reduced: bool = False, pad_type: str = "symmetric", drop_prob: float = 0.0):
        super().__init__()
        check_pad_type(pad_type)
        self.genotype = genotype
        self.filters = filters
        self.drop_prob = drop_prob
        self.has_prev = prev_chs is not None
        self.prev_reduced = prev_reduced
        # timm registers conv_prev_1x1 (when the cell has one) before conv_1x1; so do we, so
        # that parameters() has the peer's order (an optimizer state_dict maps by position).
        conv_1x1 = ReluConvBn(in_chs, filters, 1)
        if prev_chs is not None and not prev_reduced and prev_chs != filters:
            self.conv_prev_1x1 = ReluConvBn(prev_chs, filters, 1)
        self.conv_1x1 = conv_1x1
        if prev_chs is None:
            if prev_reduced:
                raise ValueError("a cell without its own h1 cannot have prev_reduced=True")
            h1_chs = in_chs  # the raw input, read as it is
        elif prev_reduced:
            self.act = nn.ReLU()
            a, b = _halves(filters)
            self.path_1 = _SubsamplePath(prev_chs, a, shift=False)
            self.path_2 = _SubsamplePath(prev_chs, b, shift=True)
            self.final_path_bn = nn.BatchNorm2d(filters, eps=BN_EPS)
            h1_chs = filters
        elif prev_chs != filters:  # conv_prev_1x1, built above
            h1_chs = filters
        else:
            h1_chs = filters
        chs = [filters, h1_chs]
        reduce = genotype.reduction
        self._droppable: dict[str, bool] = {}
        for b, blk in enumerate(genotype.blocks):
            for side, src, op_name in (("left", blk.left, blk.left_op), ("right", blk.right, blk.right_op)):
                stride = 2 if reduce and src in (H0, H1) else 1
                op = OPS[op_name](chs[src], filters, stride, pad_type)
                name = f"comb_iter_{b}_{side}"
                self.add_module(name, op)
                self._droppable[name] = not isinstance(op, nn.Identity)
            chs.append(filters if blk.combine == "add" else 2 * filters)
        # Input states concatenated into a reduction cell's output (or a raw, wider h1)
        # must be brought to the output's resolution and width first.
        self._reduce_states: dict[int, str] = {}
        for s in genotype.concat:
            if s in (H0, H1) and (reduce or chs[s] != filters):
                name = f"reduce_state_{s}"
                self.add_module(name, FactorizedReduce(chs[s], filters) if reduce else
                                nn.Sequential(nn.Conv2d(chs[s], filters, 1, bias=False),
                                              nn.BatchNorm2d(filters, eps=BN_EPS)))
                self._reduce_states[s] = name
                chs[s] = filters
        self.out_chs = sum(chs[s] for s in genotype.concat)

    def _preprocess_prev(self, x: torch.Tensor, x_prev: torch.Tensor | None) -> torch.Tensor:
        if not self.has_prev:
            return x
        if x_prev is None:
            raise ValueError("this cell was built with an h1 input; call it as cell(x, x_prev)")
        if self.prev_reduced:
            return _factorized(self.act(x_prev), self.path_1, self.path_2, self.final_path_bn)
        if hasattr(self, "conv_prev_1x1"):
            return self.conv_prev_1x1(x_prev)
        return x_prev

    def _op(self, name: str, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, name)(x)
        if self._droppable[name]:
            y = drop_path(y, self.drop_prob, self.training)
        return y

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None = None) -> torch.Tensor:
        states = [self.conv_1x1(x), self._preprocess_prev(x, x_prev)]
        for b, blk in enumerate(self.genotype.blocks):
            left = self._op(f"comb_iter_{b}_left", states[blk.left])
            right = self._op(f"comb_iter_{b}_right", states[blk.right])
            states.append(left + right if blk.combine == "add" else torch.cat([left, right], 1))
        outs = [getattr(self, self._reduce_states[s])(states[s]) if s in self._reduce_states else states[s]
                for s in self.genotype.concat]
        return torch.cat(outs, 1)

    def extra_repr(self) -> str:
        kind = "reduction" if self.genotype.reduction else "normal"
        return f"{kind}, filters={self.filters}, out_chs={self.out_chs}, drop_prob={self.drop_prob:.3f}"
