"""NASNet-A: Zoph, Vasudevan, Shlens & Le, "Learning Transferable Architectures for
Scalable Image Recognition", CVPR 2018 (arXiv:1707.07012).

A NASNet is a stem followed by three stages of N normal cells, with a reduction cell
between stages; the cells are the ones the architecture search found on CIFAR-10
(NASNet-A, the paper's Fig. 4) and every cell is built by the generic genotype-driven
:class:`~cnnlab.layers.nas_cell.Cell`, so a searched cell runs through the same code.
The filter count F is doubled at each reduction; "N @ P" names a model by N and the
width P = 24 F of the penultimate layer (the last normal cell concatenates 6 states
of 4 F channels).

Variants (the paper's Tables 1-3; drop-path, dropout, batch-norm epsilon and the h1
wiring after a reduction as in the reference code, tensorflow/models
research/slim/nets/nasnet, whose configs are tabulated in ``VARIANTS``):

| name            | stem                        | N | P    | F   | input | padding   |
| --------------- | --------------------------- | - | ---- | --- | ----- | --------- |
| `nasnetalarge`  | 3x3/2 conv 96 + 2 stem cells | 6 | 4032 | 168 | 331   | TF "same" |
| `nasnetamobile` | 3x3/2 conv 32 + 2 stem cells | 4 | 1056 | 44  | 224   | symmetric |
| `nasnet_cifar`  | 3x3 conv 96                 | 6 | 768  | 32  | 32    | symmetric |

``nasnetalarge`` has timm's state_dict keys and shapes (tests/reference/nasnetalarge.json),
so timm's checkpoint loads with ``load_state_dict`` unchanged and computes the same
logits; it therefore pads strided layers like TensorFlow ("same"), as the ported
weights expect. The stem cells are reduction cells whose ``h1`` is the stem
convolution's raw output (the first) or that output factorized-reduced (the second),
as in the reference code.

Training extras: scheduled drop-path (each non-identity op's output is dropped per
sample with probability ``drop_path_rate * (i + 1) / num_cells`` in the i-th cell,
scaled by the training progress set with :meth:`NASNet.set_drop_path_progress`), and
an optional auxiliary head after the last normal cell of the second stage
(``aux_head=True``).

Deviations, said honestly:

* The auxiliary head is off by default: the published parameter counts (and timm's
  layout) exclude it, and it is used for training only. Its 768-channel conv spans the
  whole pooled map in the reference code (a kernel as large as the map at the default
  input); here that kernel is fixed to ``aux_grid`` and other input sizes are first
  average-pooled to that grid.
* ``nasnetamobile`` and ``nasnet_cifar`` pad symmetrically (PyTorch style) where the
  TensorFlow code pads "SAME"; this only shifts the sampling grid of stride-2 layers on
  even-sized maps by one pixel and changes no parameter or MAC count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.nas_cell import BN_EPS, Block, Cell, Genotype
from cnnlab.layers.padding import check_pad_type
from cnnlab.models.base import AuxOutput, CnnModel, check_num_classes, fresh_class_layer
from cnnlab.registry import Paper, Published, register_model

__all__ = ["NASNet", "NASNET_A_NORMAL", "NASNET_A_REDUCTION", "AuxHead", "timm_to_cnnlab_state_dict"]

PAPER = Paper(
    title="Learning Transferable Architectures for Scalable Image Recognition",
    authors="Barret Zoph, Vijay Vasudevan, Jonathon Shlens, Quoc V. Le",
    year=2017,
    arxiv="1707.07012",
    venue="CVPR 2018",
)

# NASNet-A (paper Fig. 4). State 0 = h0 (previous cell), 1 = h1 (the one before),
# 2 + b = block b. Left/right order follows the reference code, whose module names
# (comb_iter_<b>_left/right) the checkpoints use.
NASNET_A_NORMAL = Genotype(
    blocks=(
        Block(0, "sep_conv_5x5", 1, "sep_conv_3x3"),
        Block(1, "sep_conv_5x5", 1, "sep_conv_3x3"),
        Block(0, "avg_pool_3x3", 1, "identity"),
        Block(1, "avg_pool_3x3", 1, "avg_pool_3x3"),
        Block(0, "sep_conv_3x3", 0, "identity"),
    ),
    concat=(1, 2, 3, 4, 5, 6),
    reduction=False,
)
NASNET_A_REDUCTION = Genotype(
    blocks=(
        Block(0, "sep_conv_5x5", 1, "sep_conv_7x7"),
        Block(0, "max_pool_3x3", 1, "sep_conv_7x7"),
        Block(0, "avg_pool_3x3", 1, "sep_conv_5x5"),
        Block(3, "identity", 2, "avg_pool_3x3"),  # b1 + avg3(b0)
        Block(2, "sep_conv_3x3", 0, "max_pool_3x3"),  # sep3(b0) + max3(h0)
    ),
    concat=(3, 4, 5, 6),
    reduction=True,
)

AUX_LOSS_WEIGHT = 0.4  # TF-slim train_image_classifier.py, the NASNet reference trainer: AuxLogits weight 0.4


class AuxHead(nn.Module):
    """Auxiliary classifier of the reference code: avg-pool 5/3 -> 1x1 conv 128 -> BN -> ReLU
    -> conv over the ``grid`` x ``grid`` map to 768 -> BN -> ReLU -> FC. Reads ReLU'd features."""

    def __init__(self, in_chs: int, num_classes: int, grid: int):
        super().__init__()
        self.grid = grid
        self.pool = nn.AvgPool2d(5, stride=3)
        self.proj = nn.Conv2d(in_chs, 128, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(128, eps=BN_EPS)
        self.conv = nn.Conv2d(128, 768, grid, bias=False)
        self.bn1 = nn.BatchNorm2d(768, eps=BN_EPS)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        if x.shape[-2] >= 5 and x.shape[-1] >= 5:  # smaller maps skip straight to the grid
            x = self.pool(x)  # N x C x 4 x 4 (nasnet_cifar at 32x32)
        x = F.relu(self.bn0(self.proj(x)))
        if tuple(x.shape[-2:]) != (self.grid, self.grid):
            x = F.adaptive_avg_pool2d(x, self.grid)
        x = F.relu(self.bn1(self.conv(x)))  # N x 768 x 1 x 1
        return self.fc(torch.flatten(x, 1))


class NASNet(CnnModel):
    """A NASNet: stem, three stages of ``cells_per_stage`` normal cells, two reduction cells.

    Args:
        normal, reduction: the genotypes of the normal and the reduction cell.
        filters: F, the width of the first stage's cells (doubled at each reduction).
        cells_per_stage: N.
        stem: "imagenet" (3x3/2 conv + two reduction "stem cells" at F/4 and F/2) or
            "cifar" (3x3 conv).
        stem_chs: output channels of the stem convolution.
        skip_reduction_input: the cell after a reduction takes as h1 the output from
            before the last normal cell rather than the last normal cell itself
            (the reference code's ``skip_reduction_layer_input``).
        pad_type: "symmetric" or "same" (TensorFlow padding of strided layers).
        drop_rate: dropout before the classifier.
        drop_path_rate: the drop-path probability of the last cell (linear in depth).
        aux_head / aux_grid: build the auxiliary classifier; its conv's kernel size.
        bn_eps: batch-norm epsilon of every BN (reference code: 1e-3 ImageNet, 1e-5 CIFAR).
    """

    classifier_name = "last_linear"  # base-class head: global_pool -> head_drop -> this

    def __init__(self, *, normal: Genotype = NASNET_A_NORMAL, reduction: Genotype = NASNET_A_REDUCTION,
                 filters: int = 168, cells_per_stage: int = 6, stem: str = "imagenet", stem_chs: int = 96,
                 skip_reduction_input: bool = True, pad_type: str = "same", num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 aux_head: bool = False, aux_grid: int = 4, bn_eps: float = BN_EPS):
        super().__init__()
        if normal.reduction or not reduction.reduction:
            raise ValueError("`normal` must be a normal-cell genotype and `reduction` a reduction-cell genotype")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        for label, v in (("filters", filters), ("cells_per_stage", cells_per_stage), ("stem_chs", stem_chs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive integer, got {v!r}")
        check_pad_type(pad_type)
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.drop_path_rate = drop_path_rate

        if stem == "imagenet":  # 3x3 stride-2 'valid' conv, BN, no ReLU (the cells start with one)
            self.conv0 = ConvBnAct(in_chans, stem_chs, 3, stride=2, padding=0, eps=BN_EPS, act=False)
        else:
            self.conv0 = ConvBnAct(in_chans, stem_chs, 3, stride=1, padding=1, eps=BN_EPS, act=False)

        # Lay the cells out as the reference code does. `outputs` plays its list of cell
        # outputs (None = "no h1"); entries index `self._plan`'s feature list, whose
        # entry 0 is the stem convolution. `level` counts the reductions so far.
        feats: list[tuple[int, int]] = [(stem_chs, 0)]  # (channels, level) per feature
        outputs: list[int | None] = [None, 0]
        self._plan: list[tuple[str, int, int | None]] = []
        cells: list[tuple[str, Genotype, int, int, int | None]] = []

        def plan(name: str, genotype: Genotype, width: int, i0: int, i1: int | None) -> None:
            cells.append((name, genotype, width, i0, i1))
            feats.append((0, feats[i0][1] + int(genotype.reduction)))  # channels filled in below
            outputs.append(len(feats) - 1)

        if stem == "imagenet":
            for k in range(2):  # stem cells at F/4 and F/2
                plan(f"cell_stem_{k}", reduction, filters // 2 ** (2 - k), outputs[-1], outputs[-2])
        width = filters
        reduce_at = (cells_per_stage, 2 * cells_per_stage)
        aux_after = None
        for i in range(3 * cells_per_stage):
            prev = outputs[-2]
            if i in reduce_at:
                width *= 2
                plan(f"reduction_cell_{reduce_at.index(i)}", reduction, width, outputs[-1], outputs[-2])
            if not skip_reduction_input:
                prev = outputs[-2]
            plan(f"cell_{i}", normal, width, outputs[-1], prev)
            if i == 2 * cells_per_stage - 1:
                aux_after = f"cell_{i}"

        # Build the cells; drop-path grows linearly with depth over all cells.
        self._drop_path_base: dict[str, float] = {}
        for k, (name, genotype, width, i0, i1) in enumerate(cells):
            in_chs, lvl0 = feats[i0]
            prev_chs = None if i1 is None else feats[i1][0]
            prev_reduced = i1 is not None and feats[i1][1] < lvl0
            if i1 is not None and feats[i1][1] < lvl0 - 1:
                raise ValueError(f"{name}: h1 is more than one reduction behind h0; the cell cannot match it")
            base = drop_path_rate * (k + 1) / len(cells)
            cell = Cell(genotype, in_chs, prev_chs, width, prev_reduced, pad_type, drop_prob=base)
            self.add_module(name, cell)
            self._drop_path_base[name] = base
            feats[k + 1] = (cell.out_chs, feats[k + 1][1])
            self._plan.append((name, i0, i1))
        # Free every feature after its last use (inference memory).
        last_use = {}
        for step, (_, i0, i1) in enumerate(self._plan):
            for i in (i0, i1):
                if i is not None:
                    last_use[i] = step
        self._release = [[i for i, s in last_use.items() if s == step] for step in range(len(self._plan))]

        self.num_features = feats[-1][0]
        self.act = nn.ReLU()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(self.num_features, num_classes)
        self.aux_after = aux_after
        self.aux_head = None
        if aux_head:
            aux_chs = feats[[n for n, _, _ in self._plan].index(aux_after) + 1][0]
            self.aux_head = AuxHead(aux_chs, num_classes, aux_grid)
            self.aux_loss_weights = (AUX_LOSS_WEIGHT,)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = bn_eps

    # -- drop path ---------------------------------------------------------------------
    def set_drop_path_progress(self, progress: float) -> None:
        """ScheduledDropPath: scale every cell's drop-path probability by ``progress`` in
        [0, 1] (the fraction of training done; the paper ramps it up linearly)."""
        p = min(max(float(progress), 0.0), 1.0)
        for name, base in self._drop_path_base.items():
            getattr(self, name).drop_prob = base * p

    # -- forward -----------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.conv0(x)  # N x 96 x 165 x 165 (nasnetalarge at 331)
        feats: list[torch.Tensor | None] = [x]
        aux = None
        for (name, i0, i1), release in zip(self._plan, self._release):
            cell = getattr(self, name)
            y = cell(feats[i0], None if i1 is None else feats[i1])
            for i in release:
                feats[i] = None
            feats.append(y)
            if name == self.aux_after and self.aux_head is not None and self.training and self.num_classes > 0:
                aux = self.aux_head(self.act(y))
        # nasnetalarge at 331: stem cells 83, 42; stages 42, 21, 11 pixels; N x 4032 x 11 x 11
        return self.act(feats[-1]), aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)[0]

    def forward(self, x: torch.Tensor):
        self.check_input(x)
        feats, aux = self._features(x)
        logits = self.forward_head(feats)
        if aux is not None:
            return AuxOutput(logits, (aux,))
        return logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux_head is not None and num_classes > 0:  # with 0 the aux head is not run
            self.aux_head.fc = fresh_class_layer(self.aux_head.fc, num_classes)


def timm_to_cnnlab_state_dict(state_dict: dict) -> dict:
    """Map a timm ``nasnetalarge`` state_dict onto cnnlab's ``nasnetalarge``.

    cnnlab builds NASNet-A with timm's module names, so keys and shapes already agree
    one-to-one and the mapping is the identity; it exists so that loading code does not
    need to know that, and it rejects keys that cannot come from timm's NASNet.
    """
    out = dict(state_dict)
    unknown = [k for k in out if k.split(".")[0] not in _TIMM_TOP_LEVEL and not k.startswith(("cell_", "reduction_cell_"))]
    if unknown:
        raise KeyError(f"keys that are not timm NASNet keys: {unknown[:5]}")
    return out


_TIMM_TOP_LEVEL = {"conv0", "last_linear"}


# ------------------------------------------------------------------------------ builders


@dataclass(frozen=True)
class _Variant:
    stem: str
    stem_chs: int
    filters: int
    cells_per_stage: int
    pad_type: str
    skip_reduction_input: bool
    drop_rate: float  # 1 - dense_dropout_keep_prob of the reference configs
    drop_path_rate: float  # 1 - drop_path_keep_prob of the reference configs
    aux_grid: int  # side of the aux head's pooled map at the default input
    bn_eps: float


# Values from the reference code's configs (tensorflow/models, research/slim/nets/nasnet).
#                         stem      stem_chs F   N  padding      skip   drop drop_path aux bn_eps
VARIANTS = {
    "nasnetalarge": _Variant("imagenet", 96, 168, 6, "same", True, 0.5, 0.3, 6, 1e-3),
    "nasnetamobile": _Variant("imagenet", 32, 44, 4, "symmetric", False, 0.5, 0.0, 4, 1e-3),
    "nasnet_cifar": _Variant("cifar", 96, 32, 6, "symmetric", False, 0.0, 0.4, 4, 1e-5),
}


def _create(name: str, **kwargs) -> NASNet:
    v = VARIANTS[name]
    args = dict(stem=v.stem, stem_chs=v.stem_chs, filters=v.filters, cells_per_stage=v.cells_per_stage,
                pad_type=v.pad_type, skip_reduction_input=v.skip_reduction_input, drop_rate=v.drop_rate,
                drop_path_rate=v.drop_path_rate, aux_grid=v.aux_grid, bn_eps=v.bn_eps)
    args.update(kwargs)
    return NASNet(**args)


@register_model(
    family="nasnet", paper=PAPER, input_size=(3, 331, 331), min_input_size=3, dataset="imagenet",
    published=Published(params=88_753_150, params_exact=True, macs=23_783_414_658, top1=82.7, top5=96.2,
                         dataset="ImageNet", source="Zoph et al. 2018, Table 2 (88.9M, 23.8B mult-adds); "
                         "exact count and MACs from timm's nasnetalarge"),
    layout="timm",
    # Google's released NASNet weights (as timm serves them): inputs scaled to [-1, 1],
    # bicubic resize, 331 / 0.911 -> centre crop 331.
    preprocessing=dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.911, interpolation="bicubic"),
)
def nasnetalarge(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> NASNet:
    """NASNet-A (6 @ 4032), the large ImageNet model, 331x331 input."""
    return _create("nasnetalarge", num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="nasnet", paper=PAPER, input_size=(3, 224, 224), min_input_size=3, dataset="imagenet",
    published=Published(params=5_300_000, macs=564_000_000, top1=74.0, top5=91.6, dataset="ImageNet",
                        source="Zoph et al. 2018, Table 3 (NASNet-A 4 @ 1056)"),
    preprocessing=dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"),
)
def nasnetamobile(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> NASNet:
    """NASNet-A (4 @ 1056), the mobile ImageNet model, 224x224 input."""
    return _create("nasnetamobile", num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    family="nasnet", paper=PAPER, input_size=(3, 32, 32), min_input_size=1, dataset="cifar",
    published=Published(params=3_300_000, error=3.41, dataset="CIFAR-10",
                        source="Zoph et al. 2018, Table 1 (NASNet-A 6 @ 768; 2.65% with cutout)"),
)
def nasnet_cifar(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> NASNet:
    """NASNet-A (6 @ 768) for CIFAR-10, 32x32 input."""
    return _create("nasnet_cifar", num_classes=num_classes, in_chans=in_chans, **kwargs)
