"""FractalNet: Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep Neural Networks
without Residuals", ICLR 2017 (arXiv:1605.07648).

A fractal block is built by the expansion rule

    f_1(z) = conv(z),    f_{C+1}(z) = join(f_C(f_C(z)), conv(z)),

with conv = 3x3 conv-BN-ReLU and join = element-wise mean. Unrolled, f_C has C
*columns*; here column c (0-based) is a chain of 2**c convs, so column C-1 is the
deepest (2**(C-1) convs) and a block holds 2**C - 1 convs. Along the deepest column
the joins sit after every second conv: after its conv t, every column whose convs end
there (those with 2**(C-1-c) dividing t) is averaged, and the mean feeds the next conv
of each of them. The CIFAR networks stack B = 5 blocks of 64/128/256/512/512 channels,
each followed by 2x2 max pooling, and classify with a linear layer: ``fractalnet20``
(C = 3, 5 * 4 = 20 convs deep) and ``fractalnet40`` (C = 4, 40 deep).

Regularization (all off by default, so a plain model trains every weight):

* local drop-path (``local_drop_prob``, paper: 0.15): each input of a join is dropped
  with that probability, at least one is always kept, the join averages the survivors;
* global drop-path (``global_drop_prob``, paper: 0.5): with that probability a
  mini-batch is trained through a single random column, the same in every block, and
  only that column is computed;
* dropout per block (``drop_rates``, paper: 0, .1, .2, .3, .4).

``model.column`` (or the builder's ``column=``) evaluates a single column: ``None`` is
the whole fractal, ``-1`` the deepest column alone (the paper's 4.68% on CIFAR-10+).

Deviations and choices, said honestly:

* Drop-path decisions are drawn once per mini-batch (per join for local, per batch for
  global) from PyTorch's CPU generator, not per sample; the paper does not say which,
  and per-batch decisions let a dropped path skip its computation.
* The paper's implementation moves the last join of each block after the pooling layer
  (pool then average); here the block joins, then pools.
* Dropout is applied to each conv unit's output (after its ReLU); the paper fixes the
  rate per block but not the position.
* Parameter count: with the architecture above, ``fractalnet20`` has 33,724,618
  parameters for 10 classes (33,698,880 of them in conv weights), not the ~38.6M the
  paper's Table 1 lists; no figure in the paper's description explains the 4.9M
  difference, so no published count is claimed for it (see the docs and tests).
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers import ConvBnAct
from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["FractalConv", "Join", "FractalBlock", "FractalNet", "PAPER_DROP_RATES",
           "PAPER_LOCAL_DROP_PROB", "PAPER_GLOBAL_DROP_PROB"]

PAPER = Paper(
    title="FractalNet: Ultra-Deep Neural Networks without Residuals",
    authors="Gustav Larsson, Michael Maire, Gregory Shakhnarovich",
    year=2017,
    arxiv="1605.07648",
    venue="ICLR 2017",
)

# The paper's CIFAR network: output channels of the B = 5 blocks.
CIFAR_CHANNELS = (64, 128, 256, 512, 512)
# The paper's regularization settings (Section 4): pass these to the builders.
PAPER_DROP_RATES = (0.0, 0.1, 0.2, 0.3, 0.4)
PAPER_LOCAL_DROP_PROB = 0.15
PAPER_GLOBAL_DROP_PROB = 0.5


def _check_prob(name: str, p: float, upper_inclusive: bool = True) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a number, got {p!r}")
    if not (0.0 <= p <= 1.0 if upper_inclusive else 0.0 <= p < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if upper_inclusive else ')'}, got {p}")
    return float(p)


class FractalConv(ConvBnAct):
    """The fractal's base case: 3x3 conv-BN-ReLU (+ dropout when the block uses it)."""

    def __init__(self, in_chs: int, out_chs: int, drop_rate: float = 0.0):
        super().__init__(in_chs, out_chs, 3, padding=1)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(super().forward(x))


class Join(nn.Module):
    """Element-wise mean of its inputs, with local drop-path.

    ``sample_keep(n)`` draws which of ``n`` inputs survive in training: each is dropped
    with probability ``drop_prob``, and if all were dropped one of them, chosen
    uniformly, is kept. The block asks before computing, so dropped inputs are never
    computed; ``forward`` averages what it is given.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = _check_prob("local_drop_prob", drop_prob)

    def sample_keep(self, n: int) -> list[bool]:
        if not self.training or self.drop_prob == 0.0 or n < 2:
            return [True] * n
        keep = (torch.rand(n) >= self.drop_prob).tolist()
        if not any(keep):
            keep[int(torch.randint(n, ()))] = True
        return keep

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if not inputs:
            raise ValueError("Join needs at least one input")
        out = inputs[0]
        for t in inputs[1:]:
            out = out + t
        return out / len(inputs)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class FractalBlock(nn.Module):
    """f_C followed by 2x2 max pooling. ``columns[c]`` is column c's chain of 2**c convs."""

    def __init__(self, in_chs: int, out_chs: int, num_columns: int, drop_rate: float = 0.0,
                 local_drop_prob: float = 0.0):
        super().__init__()
        self.num_columns = num_columns
        self.columns = nn.ModuleList(
            nn.Sequential(*[FractalConv(in_chs if k == 0 else out_chs, out_chs, drop_rate) for k in range(2 ** c)])
            for c in range(num_columns)
        )
        self.join = Join(local_drop_prob)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor, column: int | None = None) -> torch.Tensor:
        if column is not None:
            return self.pool(self.columns[column](x))  # that column alone: N x C_out x H/2 x W/2
        C = self.num_columns
        cur = [x] * C  # the input of each column's next conv
        for t in range(1, 2 ** (C - 1) + 1):  # t = convs done along the deepest column
            # Columns whose conv ends at t: column c's convs span 2**(C-1-c) steps each.
            ending = [c for c in range(C) if t % 2 ** (C - 1 - c) == 0]
            keep = self.join.sample_keep(len(ending))
            outs = [self.columns[c][t // 2 ** (C - 1 - c) - 1](cur[c]) for c, k in zip(ending, keep) if k]
            joined = self.join(outs) if len(ending) > 1 else outs[0]  # N x C_out x H x W
            for c in ending:
                cur[c] = joined
        return self.pool(cur[0])  # all columns end at the last step: N x C_out x H/2 x W/2


class FractalNet(CnnModel):
    """B fractal blocks of C columns, then global average pooling and a linear classifier
    ``fc`` (the base class's head)."""

    def __init__(
        self,
        num_columns: int = 3,
        channels: tuple[int, ...] = CIFAR_CHANNELS,
        drop_rates: tuple[float, ...] | None = None,
        local_drop_prob: float = 0.0,
        global_drop_prob: float = 0.0,
        column: int | None = None,
        drop_rate: float = 0.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ):
        super().__init__()
        if isinstance(num_columns, bool) or not isinstance(num_columns, int) or num_columns < 1:
            raise ValueError(f"num_columns must be a positive integer, got {num_columns!r}")
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be positive integers, one per block, got {channels!r}")
        drop_rates = tuple(drop_rates) if drop_rates is not None else (0.0,) * len(channels)
        if len(drop_rates) != len(channels):
            raise ValueError(f"drop_rates needs one rate per block ({len(channels)}), got {len(drop_rates)}")
        for r in drop_rates:
            _check_prob("drop_rates entries", r, upper_inclusive=False)
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.num_columns = num_columns
        self.global_drop_prob = _check_prob("global_drop_prob", global_drop_prob)

        blocks, prev = [], in_chans
        for out, rate in zip(channels, drop_rates):
            blocks.append(FractalBlock(prev, out, num_columns, rate, local_drop_prob))
            prev = out
        self.blocks = nn.ModuleList(blocks)
        self.num_features = prev
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        if _check_prob("drop_rate", drop_rate, upper_inclusive=False) > 0:
            self.head_drop = nn.Dropout(drop_rate)  # before the classifier (timm's drop_rate; not in the paper)
        self.fc = nn.Linear(prev, self.num_classes)
        self.column = column
        self._init_weights()

    @property
    def column(self) -> int | None:
        """The single column evaluated (0 = shallowest, num_columns-1 = deepest), or None for all."""
        return self._column

    @column.setter
    def column(self, value: int | None) -> None:
        if value is not None:
            C = self.num_columns
            if isinstance(value, bool) or not isinstance(value, int) or not -C <= value < C:
                raise ValueError(f"column must be None or an integer in [{-C}, {C - 1}], got {value!r}")
            value %= C
        self._column = value

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def sample_column(self) -> int | None:
        """The column this forward pass runs through: ``self.column`` if set; in training,
        with probability ``global_drop_prob``, one drawn at random (global drop-path)."""
        if self.column is not None:
            return self.column
        if self.training and self.global_drop_prob > 0 and float(torch.rand(())) < self.global_drop_prob:
            return int(torch.randint(self.num_columns, ()))
        return None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        column = self.sample_column()
        for block in self.blocks:
            # CIFAR at 32: N x 64 x 16 x 16 -> 128 x 8 x 8 -> 256 x 4 x 4 -> 512 x 2 x 2 -> 512 x 1 x 1
            x = block(x, column)
        return x

    def new_classifier(self, num_classes: int) -> nn.Module:
        fc = super().new_classifier(num_classes)
        nn.init.zeros_(fc.bias)  # as in _init_weights
        return fc


def _fractalnet(num_columns: int, **kwargs) -> FractalNet:
    return FractalNet(num_columns=num_columns, channels=CIFAR_CHANNELS, **kwargs)


@register_model(
    family="fractalnet", paper=PAPER, input_size=(3, 32, 32), min_input_size=32, dataset="cifar",
    published=Published(error=5.22, dataset="CIFAR-10+",
                        source="Larsson et al. 2017, Table 1 (5.22% plain; 4.60% with drop-path + dropout; "
                               "its ~38.6M params do not follow from the described architecture)"),
)
def fractalnet20(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> FractalNet:
    """FractalNet, C = 3 columns, B = 5 blocks: 20 convs on the deepest path."""
    return _fractalnet(3, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="fractalnet", paper=PAPER, input_size=(3, 32, 32), min_input_size=32, dataset="cifar",
    published=Published(source="Larsson et al. 2017, Section 4 (C = 4 variant; no figure adopted here)"),
)
def fractalnet40(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> FractalNet:
    """FractalNet, C = 4 columns, B = 5 blocks: 40 convs on the deepest path."""
    return _fractalnet(4, num_classes=num_classes, in_chans=in_chans, **kwargs)
