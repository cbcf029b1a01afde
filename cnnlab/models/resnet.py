"""The residual family: one :class:`ResNet` class, many papers as its switches.

- He, Zhang, Ren, Sun (2015). Deep Residual Learning for Image Recognition. arXiv:1512.03385
  (ImageNet ResNet-18 ... 152, CIFAR ResNet-20 ... 1202, plain nets, shortcut options A/B).
- He, Zhang, Ren, Sun (2016). Identity Mappings in Deep Residual Networks. arXiv:1603.05027
  (pre-activation units: BN -> ReLU -> conv, nothing after the addition).
- Zagoruyko, Komodakis (2016). Wide Residual Networks. arXiv:1605.07146 (widen factor k,
  dropout between the convolutions).
- Xie, Girshick, Dollar, Tu, He (2016). Aggregated Residual Transformations for Deep Neural
  Networks. arXiv:1611.05431 (ResNeXt: cardinality and base width of the grouped 3x3).
- Hu, Shen, Sun (2017). Squeeze-and-Excitation Networks. arXiv:1709.01507 (SE on the branch).
- Huang, Sun, Liu, Sedra, Weinberger (2016). Deep Networks with Stochastic Depth.
  arXiv:1603.09382 (a whole block is skipped with probability 1 - p_l per mini-batch).

The switches of :class:`ResNet`:

==================  =====================================================================
``block``           ``"basic"`` (two 3x3) or ``"bottleneck"`` (1x1 -> 3x3 -> 1x1, x4 out)
``preact``          post-activation (2015) or pre-activation (2016) units
``layers``          blocks per stage; ``widths`` the stage widths; ``widen_factor`` k (WRN)
``cardinality``     groups of the bottleneck 3x3, ``base_width`` width per group (ResNeXt)
``shortcut``        ``"A"`` zero-padded identity, ``"B"`` projection when the shape
                    changes, ``False`` for a plain network without shortcuts
``stem``            ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool) or ``"cifar"`` (3x3 conv)
``se``              squeeze-and-excitation on every residual branch (``se_reduction``)
``drop_path_rate``  stochastic depth: 1 - p_L, decayed linearly over the blocks
``dropout``         dropout before the last conv of every branch (WRN)
==================  =====================================================================

State-dict layouts. Post-activation networks use torchvision's names (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``), which timm's ResNet, SE-ResNet
and ResNet-200 share, so their official checkpoints load unchanged. Pre-activation
networks use timm's ResNetV2 names (``stem.conv``, ``stages.0.blocks.0.norm1``,
``downsample.conv``, ``norm``, ``head.fc`` as a 1x1 convolution).

Stochastic depth, as the paper has it (and unlike timm's per-sample ``DropPath``): one
Bernoulli draw per block per forward pass (= per mini-batch); a dropped block does not
run its residual branch at all, it returns its shortcut; in evaluation the branch is
multiplied by its survival probability p_l (no inverted scaling in training).
Distributed training: a dropped block still ties its parameters into the autograd graph
with weight zero (one scalar per parameter tensor, no convolution is run), so every
parameter receives a gradient -- exactly zero for a dropped branch -- on every step.
DistributedDataParallel therefore needs no ``find_unused_parameters``, and the update of
a dropped block matches the paper's Torch code (zero gradient, weight decay and momentum
still applied). Ranks draw independently unless they share a seed: call
:meth:`ResNet.seed_stochastic_depth` with the same seed on every rank to drop the same
blocks across the whole global mini-batch.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.squeeze_excite import SqueezeExcite
from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = [
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ZeroPadShortcut",
    "BatchNormAct2d",
    "survival_probabilities",
]


def survival_probabilities(num_blocks: int, drop_path_rate: float) -> list[float]:
    """The paper's linear decay p_l = 1 - (l / L) (1 - p_L) for blocks l = 1 .. L.

    ``drop_path_rate`` is 1 - p_L, the drop probability of the last block; the first
    block survives with 1 - (1/L)(1 - p_L), the input (l = 0) always.
    """
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate (1 - p_L) must be in [0, 1), got {drop_path_rate!r}")
    return [1.0 - (l / num_blocks) * drop_path_rate for l in range(1, num_blocks + 1)]


def _conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm then ReLU as one module, so its keys are ``norm1.weight`` etc. (timm's
    pre-activation layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class ZeroPadShortcut(nn.Module):
    """Option A of the ResNet paper: identity, subsampled by ``stride``, with the extra
    output channels filled with zeros (appended after the input's, as the paper's
    Torch code does). No parameters."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(f"a zero-padded shortcut cannot shrink {in_chs} channels to {out_chs}")
        self.extra = out_chs - in_chs
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


class PreActProjection(nn.Module):
    """1x1 projection shortcut of a pre-activation unit; it reads the already
    normalised input, so it has no norm of its own (key ``downsample.conv``)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.conv = _conv1x1(in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _make_shortcut(kind, in_chs: int, out_chs: int, stride: int, preact: bool) -> nn.Module | None:
    """The shortcut module of a block, or None for the plain identity (or no shortcut)."""
    if kind is False or (in_chs == out_chs and stride == 1):
        return None
    if kind == "A":
        return ZeroPadShortcut(in_chs, out_chs, stride)
    if preact:
        return PreActProjection(in_chs, out_chs, stride)
    return nn.Sequential(_conv1x1(in_chs, out_chs, stride), nn.BatchNorm2d(out_chs))  # option B


class _ResidualUnit(nn.Module):
    """What every block shares: the shortcut switch, stochastic depth and SE.

    Subclasses build ``conv*``/``bn*`` (or ``norm*``) and implement ``residual(x)``,
    the branch F(x) including SE. ``survival`` is p_l; 1.0 means never dropped.
    """

    expansion = 1
    preact = False

    def _init_shared(self, out_chs: int, *, shortcut, downsample, se: bool, se_reduction: int,
                     survival: float, dropout: float) -> None:
        self.use_shortcut = shortcut is not False
        # SE before the shortcut, as timm registers them (parameters() in the peer's order,
        # so an optimizer state_dict maps onto the same tensors); a pre-activation block
        # has already registered its shortcut first (timm's PreActBottleneck does).
        self.se = SqueezeExcite(out_chs, se_reduction) if se else None
        self.downsample = downsample
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.survival = float(survival)
        self.depth_generator: torch.Generator | None = None

    def _skipped(self) -> bool:
        """One Bernoulli draw per forward pass: True when the block is dropped."""
        if not self.training or self.survival >= 1.0:
            return False
        draw = torch.rand((), generator=self.depth_generator, device="cpu")
        return bool(draw >= self.survival)

    def _tie_params(self, y: torch.Tensor) -> torch.Tensor:
        """Add 0 x (one element of every parameter) so a dropped branch's parameters
        still get a (zero) gradient: the graph stays the same for DDP. No conv runs."""
        if not torch.is_grad_enabled():
            return y
        params = [p.view(-1)[0] for p in self.parameters() if p.requires_grad]
        return y + torch.stack(params).sum() * 0.0 if params else y

    def _finish_branch(self, out: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            out = self.se(out)
        if not self.training and self.survival < 1.0:
            out = out * self.survival  # expectation of b_l * F(x) over the drop
        return out

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}" if self.survival < 1.0 else ""


class _PostActUnit(_ResidualUnit):
    """y = ReLU(F(x) + shortcut(x)) (He et al. 2015)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        if self._skipped():
            return F.relu(self._tie_params(shortcut))
        out = self._finish_branch(self.residual(x))
        if self.use_shortcut:
            out = out + shortcut
        return F.relu(out)


class _PreActUnit(_ResidualUnit):
    """y = F(BN-ReLU(x)) + shortcut (He et al. 2016). A shortcut module (projection or
    zero-pad) reads the pre-activated input, shared by both paths; the identity reads x."""

    preact = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skipped = self._skipped()
        if skipped and self.downsample is None:
            return self._tie_params(x)
        x_pre = self.norm1(x)  # BN -> ReLU
        shortcut = x if self.downsample is None else self.downsample(x_pre)
        if skipped:
            return self._tie_params(shortcut)
        out = self._finish_branch(self.residual(x_pre))
        return out + shortcut if self.use_shortcut else out


class BasicBlock(_PostActUnit):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN (+ shortcut) -> ReLU."""

    def __init__(self, in_chs: int, planes: int, stride: int = 1, *, shortcut="B", cardinality: int = 1,
                 base_width: int = 64, stride_in_1x1: bool = False, se: bool = False, se_reduction: int = 16,
                 survival: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if cardinality != 1 or base_width != 64:
            raise ValueError("basic blocks support only cardinality=1 and base_width=64 (use block='bottleneck')")
        self.conv1 = _conv3x3(in_chs, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self._init_shared(planes, shortcut=shortcut, se=se, se_reduction=se_reduction, survival=survival,
                          dropout=dropout, downsample=_make_shortcut(shortcut, in_chs, planes, stride, False))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # N x planes x H/s x W/s
        return self.bn2(self.conv2(self.drop(out)))


class Bottleneck(_PostActUnit):
    """conv1x1 -> BN -> ReLU -> grouped conv3x3 -> BN -> ReLU -> conv1x1 (x4) -> BN (+ shortcut) -> ReLU.

    The stride sits on the 3x3 (torchvision's "v1.5"; the 2015 paper strides the first
    1x1: ``stride_in_1x1=True``). Inner width = floor(planes * base_width / 64) * cardinality.
    """

    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, *, shortcut="B", cardinality: int = 1,
                 base_width: int = 64, stride_in_1x1: bool = False, se: bool = False, se_reduction: int = 16,
                 survival: float = 1.0, dropout: float = 0.0):
        super().__init__()
        width = int(planes * base_width / 64) * cardinality
        out_chs = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv1x1(in_chs, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, s3, groups=cardinality)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, out_chs)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self._init_shared(out_chs, shortcut=shortcut, se=se, se_reduction=se_reduction, survival=survival,
                          dropout=dropout, downsample=_make_shortcut(shortcut, in_chs, out_chs, stride, False))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # N x width x H x W
        out = F.relu(self.bn2(self.conv2(out)))  # N x width x H/s x W/s
        return self.bn3(self.conv3(self.drop(out)))  # N x 4 planes x H/s x W/s


class PreActBasicBlock(_PreActUnit):
    """BN -> ReLU -> conv3x3 -> BN -> ReLU -> [dropout] -> conv3x3, + shortcut (also the WRN block)."""

    def __init__(self, in_chs: int, planes: int, stride: int = 1, *, shortcut="B", cardinality: int = 1,
                 base_width: int = 64, stride_in_1x1: bool = False, se: bool = False, se_reduction: int = 16,
                 survival: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if cardinality != 1 or base_width != 64:
            raise ValueError("basic blocks support only cardinality=1 and base_width=64 (use block='bottleneck')")
        downsample = _make_shortcut(shortcut, in_chs, planes, stride, True)
        self.downsample = downsample  # registered first, as in timm's ResNetV2 blocks
        self.norm1 = BatchNormAct2d(in_chs)
        self.conv1 = _conv3x3(in_chs, planes, stride)
        self.norm2 = BatchNormAct2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self._init_shared(planes, shortcut=shortcut, se=se, se_reduction=se_reduction, survival=survival,
                          dropout=dropout, downsample=downsample)

    def residual(self, x_pre: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv1(x_pre))  # N x planes x H/s x W/s
        return self.conv2(self.drop(out))


class PreActBottleneck(_PreActUnit):
    """BN -> ReLU -> conv1x1 -> BN -> ReLU -> grouped conv3x3 -> BN -> ReLU -> conv1x1 (x4), + shortcut."""

    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, *, shortcut="B", cardinality: int = 1,
                 base_width: int = 64, stride_in_1x1: bool = False, se: bool = False, se_reduction: int = 16,
                 survival: float = 1.0, dropout: float = 0.0):
        super().__init__()
        width = int(planes * base_width / 64) * cardinality
        out_chs = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        downsample = _make_shortcut(shortcut, in_chs, out_chs, stride, True)
        self.downsample = downsample  # registered first, as in timm's ResNetV2 blocks
        self.norm1 = BatchNormAct2d(in_chs)
        self.conv1 = _conv1x1(in_chs, width, s1)
        self.norm2 = BatchNormAct2d(width)
        self.conv2 = _conv3x3(width, width, s3, groups=cardinality)
        self.norm3 = BatchNormAct2d(width)
        self.conv3 = _conv1x1(width, out_chs)
        self._init_shared(out_chs, shortcut=shortcut, se=se, se_reduction=se_reduction, survival=survival,
                          dropout=dropout, downsample=downsample)

    def residual(self, x_pre: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv1(x_pre))  # N x width x H x W
        out = self.norm3(self.conv2(out))  # N x width x H/s x W/s
        return self.conv3(self.drop(out))  # N x 4 planes x H/s x W/s


_BLOCKS = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneck,
}


class _PreActStage(nn.Module):
    """A stage of the pre-activation layout (key ``stages.i.blocks.j``)."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _ConvHead(nn.Module):
    """Classifier as a 1x1 convolution on the pooled features (timm's ResNetV2, key ``head.fc``)."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.fc = nn.Conv2d(in_chs, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).flatten(1)


class ResNet(CnnModel):
    """Residual network; see the module docstring for the switches.

    The first stage keeps the stem's resolution, every later stage halves it (stride 2
    in its first block). Global average pooling feeds the classifier, so any input size
    down to 1x1 works.
    """

    def __init__(
        self,
        block: str = "basic",
        layers: tuple[int, ...] = (2, 2, 2, 2),
        *,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        widen_factor: int = 1,
        preact: bool = False,
        stem: str = "imagenet",
        stem_width: int = 64,
        shortcut: str | bool = "B",
        cardinality: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        se: bool = False,
        se_reduction: int = 16,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if shortcut not in ("A", "B", False):
            raise ValueError(f"shortcut must be 'A' (zero-padded identity), 'B' (projection) or False (plain), got {shortcut!r}")
        if len(layers) != len(widths) or not layers or any(int(n) < 1 for n in layers):
            raise ValueError(f"layers {tuple(layers)} must give a positive block count for each of the widths {tuple(widths)}")
        for name, value in (("widen_factor", widen_factor), ("cardinality", cardinality), ("base_width", base_width),
                            ("se_reduction", se_reduction), ("stem_width", stem_width), ("in_chans", in_chans)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if shortcut is False and drop_path_rate > 0:
            raise ValueError("stochastic depth (drop_path_rate > 0) needs shortcuts: a dropped block of a plain net has no output")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.preact = preact
        block_cls = _BLOCKS[(block, preact)]
        survival = iter(survival_probabilities(sum(layers), drop_path_rate))

        # Stem.  N x stem_width x H/4 x W/4 (ImageNet) or N x stem_width x H x W (CIFAR).
        if stem == "imagenet":
            conv = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
            pool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            conv = _conv3x3(in_chans, stem_width)
            pool = nn.Identity()
        if preact:  # no norm: the first unit pre-activates its input
            self.stem = nn.Sequential(OrderedDict(conv=conv, pool=pool))
        else:
            self.conv1, self.bn1, self.relu, self.maxpool = conv, nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True), pool

        # Stages.
        stages, in_chs = [], stem_width
        for i, (count, width) in enumerate(zip(layers, widths)):
            planes = width * widen_factor
            blocks = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block_cls(
                    in_chs, planes, stride, shortcut=shortcut, cardinality=cardinality, base_width=base_width,
                    stride_in_1x1=stride_in_1x1, se=se, se_reduction=se_reduction, survival=next(survival),
                    dropout=dropout))
                in_chs = planes * block_cls.expansion
            stages.append(blocks)
        self.num_features = in_chs
        if drop_rate > 0:  # dropout on the pooled features, before the classifier (timm's drop_rate)
            self.head_drop = nn.Dropout(drop_rate)
        if preact:
            self.stages = nn.Sequential(*[_PreActStage(b) for b in stages])
            self.norm = BatchNormAct2d(in_chs)  # the final BN -> ReLU of a pre-activation net
            self.head = _ConvHead(in_chs, num_classes)
            self.classifier_name = "head.fc"  # reset_classifier / get_classifier use it (CnnModel)
        else:
            self.stage_names = [f"layer{i + 1}" for i in range(len(stages))]
            for name, blocks in zip(self.stage_names, stages):
                self.add_module(name, nn.Sequential(*blocks))
            self.fc = nn.Linear(in_chs, num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al. (2015): "msra" init of the convolutions; BN starts as the identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.get_classifier():
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def residual_blocks(self) -> list[_ResidualUnit]:
        """All residual blocks, input to output (l = 1 .. L of stochastic depth)."""
        return [m for m in self.modules() if isinstance(m, _ResidualUnit)]

    def seed_stochastic_depth(self, seed: int) -> torch.Generator:
        """Draw the block drops from a private generator seeded with ``seed`` (give every
        DDP rank the same seed so all ranks drop the same blocks)."""
        gen = torch.Generator().manual_seed(seed)
        for blk in self.residual_blocks():
            blk.depth_generator = gen
        return gen

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            x = self.stem(x)  # N x stem_width x H/4 x W/4 (ImageNet stem) or H x W (CIFAR stem)
            x = self.stages(x)  # N x num_features x H/32 x W/32 (ImageNet) or H/4 x W/4 (CIFAR)
            return self.norm(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # N x 64 x 56 x 56 at 224 (ImageNet)
        for name in self.stage_names:
            x = getattr(self, name)(x)  # layer4 of ResNet-50: N x 2048 x 7 x 7
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x num_features x 1 x 1
        if pre_logits or not self.num_classes:
            return x.flatten(1)
        drop = self._modules.get("head_drop")
        if drop is not None:
            x = drop(x)
        if self.preact:
            return self.head(x)  # N x num_classes
        return self.fc(x.flatten(1))  # N x num_classes


# --------------------------------------------------------------------------------------
# Builders. Papers and published figures first, then one small function per variant.

_RESNET = Paper("Deep Residual Learning for Image Recognition", "He, Zhang, Ren, Sun", 2015, "1512.03385")
_PREACT = Paper("Identity Mappings in Deep Residual Networks", "He, Zhang, Ren, Sun", 2016, "1603.05027")
_WRN = Paper("Wide Residual Networks", "Zagoruyko, Komodakis", 2016, "1605.07146")
_RESNEXT = Paper("Aggregated Residual Transformations for Deep Neural Networks",
                 "Xie, Girshick, Dollar, Tu, He", 2016, "1611.05431")
_SE = Paper("Squeeze-and-Excitation Networks", "Hu, Shen, Sun", 2017, "1709.01507")
_SD = Paper("Deep Networks with Stochastic Depth", "Huang, Sun, Liu, Sedra, Weinberger", 2016, "1603.09382")

_TV = "torchvision reference (state_dict manifest; accuracy of torchvision's IMAGENET1K_V1 weights, 224 crop)"
_TIMM = "timm reference (state_dict manifest)"

# ImageNet stages: (block, blocks per stage)
_IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
_CIFAR_WIDTHS = (16, 32, 64)


def _imagenet(depth: int, **kwargs) -> ResNet:
    block, layers = _IMAGENET_DEPTHS[depth]
    return ResNet(block, layers, **kwargs)


def _cifar(depth: int, block: str = "basic", **kwargs) -> ResNet:
    """A CIFAR net of ``depth`` layers: 6n+2 with basic blocks, 9n+2 with bottlenecks."""
    per_block = 2 if block == "basic" else 3
    n, rest = divmod(depth - 2, 3 * per_block)
    if rest or n < 1:
        raise ValueError(f"a CIFAR {block} net needs depth = {3 * per_block}n + 2, got {depth}")
    kwargs.setdefault("widths", _CIFAR_WIDTHS)
    kwargs.setdefault("stem_width", 16)
    return ResNet(block, (n,) * 3, stem="cifar", **kwargs)


def _wrn(depth: int, k: int, **kwargs) -> ResNet:
    """WRN-depth-k: pre-activation basic blocks, (depth - 4) / 6 per group."""
    n, rest = divmod(depth - 4, 6)
    if rest or n < 1:
        raise ValueError(f"a wide ResNet needs depth = 6n + 4, got {depth}")
    return ResNet("basic", (n,) * 3, widths=_CIFAR_WIDTHS, widen_factor=k, preact=True, stem="cifar",
                  stem_width=16, shortcut="B", **kwargs)


def _resnext29(cardinality: int, **kwargs) -> ResNet:
    """ResNeXt-29 (c x 64d) for CIFAR: 3 stages of 3 bottlenecks, 64-channel 3x3 stem."""
    return ResNet("bottleneck", (3, 3, 3), widths=(64, 128, 256), stem="cifar", stem_width=64,
                  cardinality=cardinality, base_width=64, **kwargs)


def _register(paper: Paper, dataset: str, *, params: int | None = None, exact: bool = False, macs=None,
              top1=None, top5=None, error=None, source: str, layout: str = "paper"):
    size = (3, 224, 224) if dataset == "imagenet" else (3, 32, 32)
    published = Published(params=params, params_exact=exact, macs=macs, top1=top1, top5=top5, error=error,
                          dataset={"imagenet": "ImageNet-1k val", "cifar": "CIFAR-10"}[dataset], source=source)
    # Every net here pools globally and pads every conv, so 1x1 inputs run (train mode too).
    return register_model(family="resnet", paper=paper, input_size=size, min_input_size=1, dataset=dataset,
                          published=published, layout=layout)


# ---- ImageNet ResNets (torchvision layout: stride on the bottleneck 3x3, "v1.5") ----
# Departures from the 2015 paper: the bottleneck strides its 3x3 instead of its first 1x1
# (+0.3 GMACs for ResNet-50; stride_in_1x1=True restores the paper), and the projection
# shortcut (option B) is conv + BN, as in the paper's released models.


@_register(_RESNET, "imagenet", params=11_689_512, exact=True, macs=1_814_073_344, top1=69.758, top5=89.078,
           source=_TV, layout="torchvision")
def resnet18(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2). As the paper, but option-B shortcuts with BN (torchvision)."""
    return _imagenet(18, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "imagenet", params=21_797_672, exact=True, macs=3_663_761_408, top1=73.314, top5=91.420,
           source=_TV, layout="torchvision")
def resnet34(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-34 (basic blocks 3-4-6-3). As the paper, but option-B shortcuts with BN (torchvision)."""
    return _imagenet(34, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "imagenet", params=25_557_032, exact=True, macs=4_089_184_256, top1=76.130, top5=92.862,
           source=_TV, layout="torchvision")
def resnet50(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-50 (bottlenecks 3-4-6-3). Departs: stride on the 3x3, not the first 1x1 (4.09 vs 3.8 GMACs)."""
    return _imagenet(50, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "imagenet", params=44_549_160, exact=True, macs=7_801_405_440, top1=77.374, top5=93.546,
           source=_TV, layout="torchvision")
def resnet101(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-101 (bottlenecks 3-4-23-3). Departs: stride on the 3x3, not the first 1x1."""
    return _imagenet(101, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "imagenet", params=60_192_808, exact=True, macs=11_513_626_624, top1=78.312, top5=94.046,
           source=_TV, layout="torchvision")
def resnet152(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-152 (bottlenecks 3-8-36-3). Departs: stride on the 3x3, not the first 1x1."""
    return _imagenet(152, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_PREACT, "imagenet", params=64_673_832, exact=True, macs=15_007_481_856, source=_TIMM, layout="timm")
def resnet200(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-200 (bottlenecks 3-24-36-3), post-activation as timm's ``resnet200``.

    Departs from the paper that introduced it (Identity Mappings, 2016, where ResNet-200
    is pre-activation): timm's layout is the original post-activation unit, stride on the 3x3.
    """
    return _imagenet(200, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---- CIFAR ResNets (6n+2 layers, option A shortcuts) and their plain twins ----
# As the paper: 3x3 conv 16 -> three stages of n basic blocks (16/32/64 filters on
# 32/16/8 maps) -> global average pool -> FC. Option A pads the extra channels with zeros
# after the input's; the paper does not say on which side.

_CIFAR_SRC = "He et al. 2015, Sec. 4.2 and Table 6"


@_register(_RESNET, "cifar", params=269_722, exact=True, error=8.75, source=_CIFAR_SRC)
def resnet20(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-20 for CIFAR (n = 3). As the paper (zero channels appended on option A)."""
    return _cifar(20, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=464_154, exact=True, error=7.51, source=_CIFAR_SRC)
def resnet32(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-32 for CIFAR (n = 5). As the paper."""
    return _cifar(32, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=658_586, exact=True, error=7.17, source=_CIFAR_SRC)
def resnet44(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-44 for CIFAR (n = 7). As the paper."""
    return _cifar(44, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=853_018, exact=True, error=6.97, source=_CIFAR_SRC)
def resnet56(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-56 for CIFAR (n = 9). As the paper."""
    return _cifar(56, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=1_727_962, exact=True, error=6.43, source=_CIFAR_SRC)
def resnet110(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-110 for CIFAR (n = 18). As the paper."""
    return _cifar(110, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=19_421_274, exact=True, error=7.93, source=_CIFAR_SRC)
def resnet1202(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-1202 for CIFAR (n = 200). As the paper (which trains it without dropout/maxout too)."""
    return _cifar(1202, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


# Plain nets: option-A shortcuts have no parameters, so a plain net has exactly the
# parameters (and names) of the ResNet of the same depth (paper Sec. 4.2, Fig. 6).
_PLAIN_SRC = "He et al. 2015, Sec. 4.2 (same parameters as the ResNet of equal depth); errors only plotted (Fig. 6)"


@_register(_RESNET, "cifar", params=269_722, exact=True, source=_PLAIN_SRC)
def plain20(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-20: ResNet-20 without shortcuts. As the paper."""
    return _cifar(20, shortcut=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=464_154, exact=True, source=_PLAIN_SRC)
def plain32(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-32: ResNet-32 without shortcuts. As the paper."""
    return _cifar(32, shortcut=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=658_586, exact=True, source=_PLAIN_SRC)
def plain44(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-44: ResNet-44 without shortcuts. As the paper."""
    return _cifar(44, shortcut=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=853_018, exact=True, source=_PLAIN_SRC)
def plain56(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-56: ResNet-56 without shortcuts. As the paper."""
    return _cifar(56, shortcut=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNET, "cifar", params=1_727_962, exact=True, source=_PLAIN_SRC)
def plain110(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Plain-110: ResNet-110 without shortcuts. As the paper."""
    return _cifar(110, shortcut=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---- Stochastic depth preset ----


@_register(_SD, "cifar", params=1_727_962, exact=True, error=5.25,
           source="Huang et al. 2016, CIFAR-10 (ResNet-110, linear decay to p_L = 0.5)")
def resnet110_sd(*, num_classes: int = 10, in_chans: int = 3, drop_path_rate: float = 0.5, **kwargs) -> ResNet:
    """ResNet-110 with stochastic depth, p_L = 0.5 (any other residual net: ``drop_path_rate=``).

    As the paper: linear decay, one draw per block per mini-batch, dropped branches not
    computed, test-time scaling by p_l. Departs only in bookkeeping: a dropped block ties
    its parameters into the graph with weight zero (zero gradients, DDP-safe).
    """
    return _cifar(110, shortcut="A", drop_path_rate=drop_path_rate, num_classes=num_classes, in_chans=in_chans,
                  **kwargs)


# ---- Pre-activation ResNets ----
# CIFAR: 3x3 conv 16 -> units -> BN -> ReLU -> pool -> FC. The first unit's BN-ReLU acts
# right after conv1, before the split into the two paths, as the paper's appendix says;
# where the shape changes, the shortcut reads that pre-activated input. Shortcuts: 1x1
# projections (the paper's released 164/1001-layer code); preact_resnet110 keeps the
# original ResNet-110's zero-padded option A. The classifier is a 1x1 conv on the pooled
# features (timm's ResNetV2 layout; the same function as an FC layer).


@_register(_PREACT, "cifar", params=1_700_000, error=6.37, source="He et al. 2016, CIFAR-10 (~1.7M, as ResNet-110)")
def preact_resnet110(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Pre-activation ResNet-110 for CIFAR (basic units).

    The paper does not spell out its shortcut at the two transitions; this keeps ResNet-110's
    parameter-free option A. Classifier as a 1x1 conv (timm layout, same function as an FC).
    """
    return _cifar(110, preact=True, shortcut="A", num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_PREACT, "cifar", params=1_700_000, error=5.46, source="He et al. 2016, CIFAR-10 (1.7M)")
def preact_resnet164(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Pre-activation ResNet-164 for CIFAR (bottleneck units 16-64, 32-128, 64-256). 1,703,258 params (paper: 1.7M)."""
    return _cifar(164, "bottleneck", preact=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_PREACT, "cifar", params=10_200_000, error=4.92, source="He et al. 2016, CIFAR-10 (10.2M; 4.62% at batch 64)")
def preact_resnet1001(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Pre-activation ResNet-1001 for CIFAR (111 bottleneck units per stage).

    10,327,706 params with conv-only 1x1 projections at the three shape changes; the paper
    says 10.2M (within 1.3%; its exact count is not given).
    """
    return _cifar(1001, "bottleneck", preact=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_PREACT, "imagenet", params=25_549_352, exact=True, macs=4_089_184_256, source=_TIMM, layout="timm")
def resnetv2_50(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """Pre-activation ResNet-50 for ImageNet (timm ``resnetv2_50`` layout).

    Departs from the paper as timm does: stride on the 3x3, and a 1x1-conv classifier.
    """
    return _imagenet(50, preact=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---- Wide ResNets ----
# CIFAR WRN-d-k: pre-activation basic units, widths 16k/32k/64k after a 16-filter 3x3 conv,
# 1x1 conv shortcut where the shape changes (also in group 1, 16 -> 16k), optional
# dropout (the paper's 0.3) between the two convs: ``dropout=0.3``.
# ImageNet wide_resnet50_2 / 101_2 (torchvision): the bottleneck's inner width doubled.
_WRN_SRC = "Zagoruyko & Komodakis 2016, CIFAR-10 results (~ params as printed)"


@_register(_WRN, "cifar", params=10_960_000, error=4.27, source=_WRN_SRC)
def wrn16_8(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-16-8 for CIFAR. Departs: dropout off by default (the paper's best runs use ``dropout=0.3``)."""
    return _wrn(16, 8, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_WRN, "cifar", params=36_500_000, error=4.00, source=_WRN_SRC)
def wrn28_10(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-28-10 for CIFAR (3.89% error with ``dropout=0.3``; off by default)."""
    return _wrn(28, 10, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_WRN, "cifar", params=8_949_210, exact=True, error=4.53, source=_WRN_SRC)
def wrn40_4(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-40-4 for CIFAR (dropout off by default, ``dropout=0.3`` for the paper's variant)."""
    return _wrn(40, 4, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_WRN, "imagenet", params=68_883_240, exact=True, macs=11_398_021_120, top1=78.468, top5=94.086,
           source=_TV, layout="torchvision")
def wide_resnet50_2(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """Wide ResNet-50-2 (bottleneck 1x1/3x3 twice as wide; torchvision, stride on the 3x3)."""
    return _imagenet(50, base_width=128, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_WRN, "imagenet", params=126_886_696, exact=True, macs=22_753_050_624, top1=78.848, top5=94.284,
           source=_TV, layout="torchvision")
def wide_resnet101_2(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """Wide ResNet-101-2 (bottleneck 1x1/3x3 twice as wide; torchvision, stride on the 3x3)."""
    return _imagenet(101, base_width=128, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---- ResNeXt ----
# ImageNet (torchvision): ResNet-50/101 with a grouped 3x3 of cardinality x width.
# CIFAR ResNeXt-29: 3x3 conv 64 -> 3 stages of 3 bottlenecks, outputs 256/512/1024,
# inner width cardinality x 64 doubling per stage; projection shortcuts (conv + BN).


@_register(_RESNEXT, "imagenet", params=25_028_904, exact=True, macs=4_230_479_872, top1=77.618, top5=93.698,
           source=_TV, layout="torchvision")
def resnext50_32x4d(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-50 (32x4d). As the paper (stride on the grouped 3x3)."""
    return _imagenet(50, cardinality=32, base_width=4, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNEXT, "imagenet", params=88_791_336, exact=True, macs=16_414_015_488, top1=79.312, top5=94.526,
           source=_TV, layout="torchvision")
def resnext101_32x8d(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-101 (32x8d). As the paper (stride on the grouped 3x3)."""
    return _imagenet(101, cardinality=32, base_width=8, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNEXT, "imagenet", params=83_455_272, exact=True, macs=15_460_270_080,
           source="torchvision reference (state_dict manifest)", layout="torchvision")
def resnext101_64x4d(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-101 (64x4d). As the paper (stride on the grouped 3x3)."""
    return _imagenet(101, cardinality=64, base_width=4, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNEXT, "cifar", params=34_400_000, error=3.65, source="Xie et al. 2016, CIFAR-10 results")
def resnext29_8x64d(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-29 (8x64d) for CIFAR. 34,426,698 params (paper: 34.4M)."""
    return _resnext29(8, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_RESNEXT, "cifar", params=68_100_000, error=3.58, source="Xie et al. 2016, CIFAR-10 results")
def resnext29_16x64d(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-29 (16x64d) for CIFAR. 68,155,210 params (paper: 68.1M)."""
    return _resnext29(16, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---- SE-ResNets (timm layout: SE after the last BN of the branch, before the addition) ----


@_register(_SE, "imagenet", params=28_088_024, exact=True, macs=4_091_699_200, top1=77.63, top5=93.64,
           source="timm reference (state_dict manifest); accuracy: Hu et al. 2017 (single crop, 22.37/6.36 err)",
           layout="timm")
def seresnet50(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """SE-ResNet-50 (r = 16). Departs: stride on the 3x3 (timm); the paper's base ResNet-50 strides the 1x1."""
    return _imagenet(50, se=True, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(_SE, "imagenet", params=27_559_896, exact=True, macs=4_232_994_816, source=_TIMM, layout="timm")
def seresnext50_32x4d(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """SE-ResNeXt-50 (32x4d, r = 16). As the paper, timm layout."""
    return _imagenet(50, se=True, cardinality=32, base_width=4, num_classes=num_classes, in_chans=in_chans, **kwargs)
