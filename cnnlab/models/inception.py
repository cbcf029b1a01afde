"""The Inception family after GoogLeNet: Inception-v3, Inception-v4 and Inception-ResNet-v2.

Papers:
    Szegedy, Vanhoucke, Ioffe, Shlens, Wojna (2015). Rethinking the Inception
    Architecture for Computer Vision. arXiv:1512.00567 (CVPR 2016).  -> ``inception_v3``
    Szegedy, Ioffe, Vanhoucke, Alemi (2016). Inception-v4, Inception-ResNet and the
    Impact of Residual Connections on Learning. arXiv:1602.07261 (AAAI 2017).
    -> ``inception_v4``, ``inception_resnet_v2``

Every Inception module is a set of parallel branches whose outputs are concatenated
along the channels. Here each module is written as a *table* of its branches, one row
per branch, in a small notation close to the papers' figures:

    "1x1 64"           conv 1x1 with 64 filters (+ BatchNorm + ReLU), "same" padding
    "1x7 224"          conv with a kernel 1 high and 7 wide (PyTorch's (kh, kw) order)
    "3x3/2 384 V"      stride 2, "V" = valid (no) padding, as the papers mark it
    "maxpool 3x3/2 V"  max pooling; "avgpool 3x3" average pooling, stride 1, padding 1
    "avgpool 3x3 excl-pad"  the same, but the zero padding is left out of each average
                       (TensorFlow's SAME pooling, which timm's ports keep)
    "a | b | c"        a chain of layers, left to right
    "... | [1x3 384, 3x1 384]"  the chain ends in parallel leaves, concatenated
    "{c7}"             a width filled in by the block's arguments (e.g. Inception-v3's c7)

:class:`MixedBlock` turns such a table into modules, named the way torchvision
(``inception_v3``) or timm (``inception_v4``, ``inception_resnet_v2``) name them, so
the state_dict keys and shapes equal theirs (tests/reference/*.json) and their
checkpoints load with ``load_state_dict(strict=True)``.

Where the reference layouts (which the checkpoints need) differ from the papers, this
file follows the references and says so next to the table concerned. The summary:

* Inception-v3 (torchvision, as Google released it): after the first max pool the stem
  is 1x1 80 -> 3x3 192 -> maxpool, where the paper's Table 1 lists 3x3 80 -> 3x3/2 192
  -> 3x3 288; the 35x35 blocks keep a 5x5 branch next to the double 3x3 one (Fig. 5 has
  only the latter); the auxiliary head batch-normalizes its convs but not its FC layer
  (the paper's "BN-auxiliary" normalizes the FC too). Its 3x3 average pools count the
  zero padding (PyTorch's default), unlike TensorFlow's.
* Inception-v4 (timm, ported from TF-slim): in the stem's 7x7 branch and in blocks B and
  C the order of the asymmetric convolutions differs from the paper's figures (1x7 before
  7x1 in the stem, 7x1 before 1x7 in B's double branch, 3x1 before 1x3 in C). No
  auxiliary head (timm has none).
* Inception-ResNet-v2 (timm / TF-slim): the stem is Inception-v3's plus a "mixed_5b"
  Inception block (35x35x320), not the paper's Inception-v4 stem (35x35x384); so the
  residual widths are 320 / 1088 / 2080 instead of the paper's 384 / 1154 / 2048, the
  block counts are 10 / 20 / 10 instead of the paper's 5 / 10 / 5, and the residuals are
  scaled by 0.17 / 0.10 / 0.20 (the paper says "between 0.1 and 0.3"). The very last
  block has scale 1 and no ReLU. No auxiliary head.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.models.base import AuxOutput, CnnModel, check_num_classes, fresh_class_layer
from cnnlab.registry import Paper, Published, register_model

__all__ = [
    "MixedBlock",
    "ResidualMixedBlock",
    "InceptionAux",
    "InceptionV3",
    "InceptionV4",
    "InceptionResNetV2",
    "parse_layer",
]

# BatchNorm epsilon of every conv here: TensorFlow's 0.001, which the torchvision and
# timm ports of these networks (and their checkpoints) use.
BN_EPS = 1e-3


# ----------------------------------------------------------------------------------
# The table notation
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    """One layer of a branch table, parsed from e.g. ``"3x3/2 384 V"``."""

    kind: str  # "conv", "avgpool" or "maxpool"
    kernel: tuple[int, int]
    stride: int
    width: int | None  # output channels of a conv; None for a pool
    valid: bool  # no padding
    count_include_pad: bool = True  # avgpool only

    @property
    def padding(self) -> tuple[int, int]:
        return (0, 0) if self.valid else (self.kernel[0] // 2, self.kernel[1] // 2)

    def out_chs(self, in_chs: int) -> int:
        return self.width if self.kind == "conv" else in_chs

    def build(self, in_chs: int) -> nn.Module:
        if self.kind == "conv":
            return ConvBnAct(in_chs, self.width, self.kernel, stride=self.stride,
                             padding=self.padding, eps=BN_EPS)
        if self.kind == "maxpool":
            return nn.MaxPool2d(self.kernel, stride=self.stride, padding=self.padding)
        return nn.AvgPool2d(self.kernel, stride=self.stride, padding=self.padding,
                            count_include_pad=self.count_include_pad)


_KERNEL = re.compile(r"^(\d+)x(\d+)(?:/(\d+))?$")
_FLAGS = {"V", "excl-pad"}


def parse_layer(text: str) -> LayerSpec:
    """Parse one layer of the table notation (see the module docstring)."""
    tokens = text.split()
    kind = "conv"
    if tokens and tokens[0] in ("avgpool", "maxpool"):
        kind = tokens.pop(0)
    match = _KERNEL.match(tokens[0]) if tokens else None
    if match is None:
        raise ValueError(f"layer {text!r}: expected a kernel like '3x3' or '3x3/2'")
    kernel = (int(match.group(1)), int(match.group(2)))
    stride = int(match.group(3) or 1)
    width = None
    rest = tokens[1:]
    if kind == "conv":
        if not rest or not rest[0].isdigit():
            raise ValueError(f"layer {text!r}: a conv needs a width, e.g. '3x3 64'")
        width = int(rest.pop(0))
    flags = set(rest)
    if not flags <= _FLAGS or ("excl-pad" in flags and kind != "avgpool"):
        raise ValueError(f"layer {text!r}: unknown or misplaced flag(s) {sorted(flags - {'V'})}")
    return LayerSpec(kind, kernel, stride, width, valid="V" in flags,
                     count_include_pad="excl-pad" not in flags)


def _parse_branch(text: str) -> tuple[list[LayerSpec], list[LayerSpec]]:
    """``"1x1 384 | [1x3 384, 3x1 384]"`` -> (chain, parallel leaves)."""
    parts = [p.strip() for p in text.split("|")]
    leaves: list[LayerSpec] = []
    if parts[-1].startswith("["):
        if not parts[-1].endswith("]"):
            raise ValueError(f"branch {text!r}: unclosed '['")
        leaves = [parse_layer(p) for p in parts.pop()[1:-1].split(",")]
        if any(leaf.kind != "conv" for leaf in leaves):
            raise ValueError(f"branch {text!r}: parallel leaves must be convolutions")
    return [parse_layer(p) for p in parts], leaves


# ----------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------

class MixedBlock(nn.Module):
    """An Inception module: parallel branches, concatenated along the channels.

    ``table`` has one row ``(name, layers)`` per branch, in concatenation order;
    ``widths`` fill the ``{placeholders}`` of the layers. ``naming`` chooses the
    state_dict layout:

    * ``"torchvision"``: every layer is an attribute of the block; a branch with
      several convs numbers them from 1 (``branch5x5_1``, ``branch5x5_2``), a lone
      conv takes the branch's name (``branch_pool``), leaves get letters
      (``branch3x3_2a``). Pools are registered as ``<name>_avgpool``/``_maxpool``.
    * ``"timm"``: a one-layer branch is that layer (``branch0``); a longer chain is an
      ``nn.Sequential`` (``branch1.0``, ``branch1.1``); a branch ending in leaves is
      flat and numbered from 0 (``branch1_0``, ``branch1_1a``, ``branch1_1b``).
    """

    def __init__(self, in_chs: int, table: Sequence[tuple[str, str]], naming: str = "timm", **widths: int):
        super().__init__()
        if naming not in ("timm", "torchvision"):
            raise ValueError(f"naming must be 'timm' or 'torchvision', got {naming!r}")
        self.in_chs = in_chs
        self._plan: list[tuple[list[str], list[str]]] = []  # per branch: chain keys, leaf keys
        self.out_chs = 0
        for name, text in table:
            try:
                text = text.format(**widths)
            except KeyError as err:
                raise ValueError(f"branch {name!r} needs the width {err.args[0]!r}") from None
            self.out_chs += self._add_branch(name, text, naming)

    def _add_branch(self, name: str, text: str, naming: str) -> int:
        """Register one branch's modules under the layout's names; return its width."""
        chain, leaves = _parse_branch(text)
        flat = naming == "torchvision" or bool(leaves)
        numbered = sum(layer.kind == "conv" for layer in chain) + bool(leaves) > 1
        index = 1 if naming == "torchvision" else 0
        chs = self.in_chs
        modules: list[tuple[str, nn.Module]] = []
        for layer in chain:
            if layer.kind == "conv":
                key = f"{name}_{index}" if numbered else name
                index += 1
            else:
                key = f"{name}_{layer.kind}" if flat else name
            modules.append((key, layer.build(chs)))
            chs = layer.out_chs(chs)
        if flat:
            for key, module in modules:
                self.add_module(key, module)
            steps = [key for key, _ in modules]
        else:
            self.add_module(name, modules[0][1] if len(modules) == 1 else nn.Sequential(*(m for _, m in modules)))
            steps = [name]
        leaf_keys = [f"{name}_{index}{letter}" for letter in string.ascii_lowercase[:len(leaves)]]
        for key, leaf in zip(leaf_keys, leaves):
            self.add_module(key, leaf.build(chs))
        self._plan.append((steps, leaf_keys))
        return sum(leaf.width for leaf in leaves) if leaves else chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for steps, leaves in self._plan:
            y = x
            for key in steps:
                y = self._modules[key](y)
            if leaves:
                outs.extend(self._modules[key](y) for key in leaves)
            else:
                outs.append(y)
        return torch.cat(outs, 1)


class ResidualMixedBlock(MixedBlock):
    """An Inception-ResNet block: ``act(x + scale * conv1x1(concat(branches)))``.

    The 1x1 "linear" convolution (``conv2d``: bias, no BatchNorm, no activation)
    projects the concatenated branches back to the input width. Scaling the residual
    down before the addition is the paper's remedy for the instability of wide
    residual Inception networks (Section 3.3, "Scaling of the Residuals").
    """

    def __init__(self, in_chs: int, table: Sequence[tuple[str, str]], scale: float,
                 activate: bool = True, **widths: int):
        super().__init__(in_chs, table, naming="timm", **widths)
        self.branch_chs = self.out_chs
        self.conv2d = nn.Conv2d(self.branch_chs, in_chs, 1, bias=True)
        self.scale = float(scale)
        self.act = nn.ReLU(inplace=True) if activate else nn.Identity()
        self.out_chs = in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2d(super().forward(x))  # N x C x H x W, C = in_chs
        return self.act(x + self.scale * residual)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class InceptionAux(nn.Module):
    """Inception-v3's auxiliary classifier on the 17x17 grid (torchvision layout):
    avgpool 5x5/3 -> conv 1x1 128 -> conv 5x5 768 -> global pool -> FC. The paper
    (Section 4) finds it acts as a regularizer rather than speeding up convergence."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = ConvBnAct(in_chs, 128, 1, eps=BN_EPS)
        self.conv1 = ConvBnAct(128, 768, 5, eps=BN_EPS)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)  # N x 768 x 5 x 5
        x = self.conv0(x)  # N x 128 x 5 x 5
        x = self.conv1(x)  # N x 768 x 1 x 1
        x = x.mean((2, 3))  # N x 768
        return self.fc(x)  # N x num_classes


# ----------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------

# Shared by Inception-v3 (torchvision names) and Inception-ResNet-v2 (timm names):
# the stem of Inception-v3. Output sizes for a 299 x 299 input.
#        torchvision      timm          layer
V3_STEM = (
    ("Conv2d_1a_3x3", "conv2d_1a", "3x3/2 32 V"),  # 149 x 149 x 32
    ("Conv2d_2a_3x3", "conv2d_2a", "3x3 32 V"),  # 147 x 147 x 32
    ("Conv2d_2b_3x3", "conv2d_2b", "3x3 64"),  # 147 x 147 x 64
    ("maxpool1", "maxpool_3a", "maxpool 3x3/2 V"),  # 73 x 73 x 64
    ("Conv2d_3b_1x1", "conv2d_3b", "1x1 80"),  # 73 x 73 x 80
    ("Conv2d_4a_3x3", "conv2d_4a", "3x3 192 V"),  # 71 x 71 x 192
    ("maxpool2", "maxpool_5a", "maxpool 3x3/2 V"),  # 35 x 35 x 192
)

# Inception-v3, paper Figures 5, 6, 7 and 10 (torchvision's class names in brackets).
V3_A = (  # 35 x 35 [InceptionA], paper Fig. 5 (a 5x5 branch kept, as in the released model)
    ("branch1x1", "1x1 64"),
    ("branch5x5", "1x1 48 | 5x5 64"),
    ("branch3x3dbl", "1x1 64 | 3x3 96 | 3x3 96"),
    ("branch_pool", "avgpool 3x3 | 1x1 {pool}"),
)
V3_REDUCTION_A = (  # 35 -> 17 [InceptionB], paper Fig. 10
    ("branch3x3", "3x3/2 384 V"),
    ("branch3x3dbl", "1x1 64 | 3x3 96 | 3x3/2 96 V"),
    ("branch_pool", "maxpool 3x3/2 V"),
)
V3_B = (  # 17 x 17 [InceptionC], paper Fig. 6 with n = 7
    ("branch1x1", "1x1 192"),
    ("branch7x7", "1x1 {c7} | 1x7 {c7} | 7x1 192"),
    ("branch7x7dbl", "1x1 {c7} | 7x1 {c7} | 1x7 {c7} | 7x1 {c7} | 1x7 192"),
    ("branch_pool", "avgpool 3x3 | 1x1 192"),
)
V3_REDUCTION_B = (  # 17 -> 8 [InceptionD]
    ("branch3x3", "1x1 192 | 3x3/2 320 V"),
    ("branch7x7x3", "1x1 192 | 1x7 192 | 7x1 192 | 3x3/2 192 V"),
    ("branch_pool", "maxpool 3x3/2 V"),
)
V3_C = (  # 8 x 8 [InceptionE], paper Fig. 7 (expanded filter bank)
    ("branch1x1", "1x1 320"),
    ("branch3x3", "1x1 384 | [1x3 384, 3x1 384]"),
    ("branch3x3dbl", "1x1 448 | 3x3 384 | [1x3 384, 3x1 384]"),
    ("branch_pool", "avgpool 3x3 | 1x1 192"),
)
#          name        table            widths         output at 299
V3_BLOCKS = (
    ("Mixed_5b", V3_A, dict(pool=32)),  # 35 x 35 x 256
    ("Mixed_5c", V3_A, dict(pool=64)),  # 35 x 35 x 288
    ("Mixed_5d", V3_A, dict(pool=64)),  # 35 x 35 x 288
    ("Mixed_6a", V3_REDUCTION_A, {}),  # 17 x 17 x 768
    ("Mixed_6b", V3_B, dict(c7=128)),  # 17 x 17 x 768
    ("Mixed_6c", V3_B, dict(c7=160)),  # 17 x 17 x 768
    ("Mixed_6d", V3_B, dict(c7=160)),  # 17 x 17 x 768
    ("Mixed_6e", V3_B, dict(c7=192)),  # 17 x 17 x 768   <- auxiliary head reads here
    ("Mixed_7a", V3_REDUCTION_B, {}),  # 8 x 8 x 1280
    ("Mixed_7b", V3_C, {}),  # 8 x 8 x 2048
    ("Mixed_7c", V3_C, {}),  # 8 x 8 x 2048
)

# Inception-v4, paper Figures 3 to 8 (timm's names: features.N).
V4_STEM = (  # paper Fig. 3, outputs at 299
    "3x3/2 32 V",  # features.0: 149 x 149 x 32
    "3x3 32 V",  # features.1: 147 x 147 x 32
    "3x3 64",  # features.2: 147 x 147 x 64
)
V4_STEM_3A = (  # features.3: 73 x 73 x 160
    ("maxpool", "maxpool 3x3/2 V"),
    ("conv", "3x3/2 96 V"),
)
V4_STEM_4A = (  # features.4: 71 x 71 x 192. The paper's 7x1 then 1x7; TF-slim/timm: 1x7 then 7x1.
    ("branch0", "1x1 64 | 3x3 96 V"),
    ("branch1", "1x1 64 | 1x7 64 | 7x1 64 | 3x3 96 V"),
)
V4_STEM_5A = (  # features.5: 35 x 35 x 384
    ("conv", "3x3/2 192 V"),
    ("maxpool", "maxpool 3x3/2 V"),
)
V4_A = (  # 35 x 35 x 384, paper Fig. 4
    ("branch0", "1x1 96"),
    ("branch1", "1x1 64 | 3x3 96"),
    ("branch2", "1x1 64 | 3x3 96 | 3x3 96"),
    ("branch3", "avgpool 3x3 excl-pad | 1x1 96"),
)
# Reduction-A, paper Fig. 7, with (k, l, m, n) from the paper's Table 1:
# Inception-v4 192, 224, 256, 384; Inception-ResNet-v2 256, 256, 384, 384.
REDUCTION_A = (
    ("branch0", "3x3/2 {n} V"),
    ("branch1", "1x1 {k} | 3x3 {l} | 3x3/2 {m} V"),
    ("branch2", "maxpool 3x3/2 V"),
)
V4_B = (  # 17 x 17 x 1024, paper Fig. 5 (its double branch has 1x7 before 7x1; timm the reverse)
    ("branch0", "1x1 384"),
    ("branch1", "1x1 192 | 1x7 224 | 7x1 256"),
    ("branch2", "1x1 192 | 7x1 192 | 1x7 224 | 7x1 224 | 1x7 256"),
    ("branch3", "avgpool 3x3 excl-pad | 1x1 128"),
)
V4_REDUCTION_B = (  # 17 -> 8, paper Fig. 8
    ("branch0", "1x1 192 | 3x3/2 192 V"),
    ("branch1", "1x1 256 | 1x7 256 | 7x1 320 | 3x3/2 320 V"),
    ("branch2", "maxpool 3x3/2 V"),
)
V4_C = (  # 8 x 8 x 1536, paper Fig. 6 (its 1x3 448 then 3x1 512; timm the reverse)
    ("branch0", "1x1 256"),
    ("branch1", "1x1 384 | [1x3 256, 3x1 256]"),
    ("branch2", "1x1 384 | 3x1 448 | 1x3 512 | [1x3 256, 3x1 256]"),
    ("branch3", "avgpool 3x3 excl-pad | 1x1 256"),
)
#            table      count  widths                         output at 299
V4_BODY = (
    (V4_A, 4, {}),  # 35 x 35 x 384
    (REDUCTION_A, 1, dict(k=192, l=224, m=256, n=384)),  # 17 x 17 x 1024
    (V4_B, 7, {}),  # 17 x 17 x 1024
    (V4_REDUCTION_B, 1, {}),  # 8 x 8 x 1536
    (V4_C, 3, {}),  # 8 x 8 x 1536
)

# Inception-ResNet-v2 (TF-slim / timm). The stem is V3_STEM (timm names) and then:
IRV2_MIXED_5B = (  # 35 x 35 x 320: an Inception-v3 style block, not in the paper
    ("branch0", "1x1 96"),
    ("branch1", "1x1 48 | 5x5 64"),
    ("branch2", "1x1 64 | 3x3 96 | 3x3 96"),
    ("branch3", "avgpool 3x3 excl-pad | 1x1 64"),
)
IRV2_A = (  # Inception-ResNet-A, 35 x 35, paper Fig. 16 (+ 1x1 linear conv to 320, paper: 384)
    ("branch0", "1x1 32"),
    ("branch1", "1x1 32 | 3x3 32"),
    ("branch2", "1x1 32 | 3x3 48 | 3x3 64"),
)
IRV2_B = (  # Inception-ResNet-B, 17 x 17, paper Fig. 17 (+ 1x1 linear conv to 1088, paper: 1154)
    ("branch0", "1x1 192"),
    ("branch1", "1x1 128 | 1x7 160 | 7x1 192"),
)
IRV2_REDUCTION_B = (  # 17 -> 8, paper Fig. 18
    ("branch0", "1x1 256 | 3x3/2 384 V"),
    ("branch1", "1x1 256 | 3x3/2 288 V"),
    ("branch2", "1x1 256 | 3x3 288 | 3x3/2 320 V"),
    ("branch3", "maxpool 3x3/2 V"),
)
IRV2_C = (  # Inception-ResNet-C, 8 x 8, paper Fig. 19 (+ 1x1 linear conv to 2080, paper: 2048)
    ("branch0", "1x1 192"),
    ("branch1", "1x1 192 | 1x3 224 | 3x1 256"),
)
IRV2_REDUCTION_A = dict(k=256, l=256, m=384, n=384)  # paper Table 1
IRV2_DEPTHS = (10, 20, 10)  # TF-slim / timm; the paper's Fig. 15 has 5, 10, 5
IRV2_SCALES = (0.17, 0.10, 0.20)  # TF-slim / timm; the paper: "between 0.1 and 0.3"

# Without an auxiliary head the smallest input is 75 for all three networks: their
# valid convs and stride-2 reductions take 75 -> 37 -> 35 -> 17 -> 15 -> 7 -> 3 -> 1.
MIN_INPUT_SIZE = 75


# ----------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------

class _InceptionNet(CnnModel):
    """What the three networks share: input checks and the head (global average pool
    -> dropout -> linear classifier, the latter under the reference layout's name;
    ``forward_head`` and ``reset_classifier`` are CnnModel's defaults)."""

    def _init_head(self, num_features: int, num_classes: int, drop_rate: float) -> None:
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_classes = check_num_classes(num_classes)
        self.num_features = num_features
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.add_module(self.classifier_name, nn.Linear(num_features, num_classes))

    def _add_stem(self, rows: Sequence[tuple[str, str]], in_chs: int) -> int:
        """Register ``(name, layer)`` rows as top-level modules; return the output width."""
        self.stem_names = []
        for name, text in rows:
            layer = parse_layer(text)
            self.add_module(name, layer.build(in_chs))
            self.stem_names.append(name)
            in_chs = layer.out_chs(in_chs)
        return in_chs

    def _forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stem_names:
            x = self._modules[name](x)
        return x


class InceptionV3(_InceptionNet):
    """Inception-v3 in torchvision's layout, with the auxiliary head ``AuxLogits``.

    In training mode (and with ``aux_logits``) ``forward`` returns
    ``AuxOutput(logits, (aux_logits,))``; the auxiliary loss weight is 0.4, the weight
    TF-slim's ``train_image_classifier.py`` gives the ``AuxLogits`` cross-entropy (the
    paper gives none). ``transform_input`` re-normalizes an input normalized with the
    ImageNet mean/std to the [-1, 1] range Google's checkpoint was trained on, as
    torchvision does for its pretrained weights; off by default, as in torchvision for
    a model built without weights.
    """

    AUX_LOSS_WEIGHT = 0.4
    # The auxiliary head (run in training mode only) needs a 17 x 17 grid after
    # Mixed_6e, which takes a 299 input; in eval mode, or without it, 75 is the
    # smallest that reaches the 1 x 1 x 2048 features (what torchvision accepts too).
    MIN_SIZE_WITH_AUX = 299
    MIN_SIZE_WITHOUT_AUX = MIN_INPUT_SIZE
    _min_input_size = MIN_SIZE_WITH_AUX  # the registry stamps its figure over this

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, drop_rate: float = 0.5):
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input needs 3 (RGB) input channels, not in_chans={in_chans}")
        self.in_chans = in_chans
        self.transform_input = transform_input
        chs = self._add_stem([(tv, layer) for tv, _, layer in V3_STEM], in_chans)
        self.block_names = []
        blocks = []
        for name, table, widths in V3_BLOCKS:
            block = MixedBlock(chs, table, naming="torchvision", **widths)
            blocks.append((name, block))
            self.block_names.append(name)
            chs = block.out_chs
            if name == "Mixed_6e":
                aux_chs = chs
        aux = InceptionAux(aux_chs, num_classes) if aux_logits else None
        # Registered where torchvision registers it, between Mixed_6e and Mixed_7a, so that
        # parameters() comes in torchvision's order (an optimizer state_dict maps by position).
        for name, block in blocks:
            self.add_module(name, block)
            if name == "Mixed_6e":
                self.AuxLogits = aux
        self._init_head(chs, num_classes, drop_rate)

    # The smallest input depends on whether the auxiliary head runs: in training mode,
    # with the head and a classifier.
    @property
    def min_input_size(self) -> int:
        return self._min_input_size if self._runs_aux() else self.MIN_SIZE_WITHOUT_AUX

    def _runs_aux(self) -> bool:
        return self.training and self.AuxLogits is not None and self.num_classes > 0

    @min_input_size.setter
    def min_input_size(self, value: int) -> None:
        self._min_input_size = value

    @property
    def aux_loss_weights(self) -> tuple[float, ...]:
        return (self.AUX_LOSS_WEIGHT,) if self.AuxLogits is not None else ()

    @aux_loss_weights.setter
    def aux_loss_weights(self, value) -> None:
        pass  # fixed by the model: (0.4,) with the aux head, () without

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return (x * std + mean - 0.5) / 0.5  # undo ImageNet normalization, map to [-1, 1]

    def _features(self, x: torch.Tensor, with_aux: bool):
        x = self._transform(x)
        x = self._forward_stem(x)  # N x 192 x 35 x 35
        aux = None
        for name in self.block_names:  # sizes per block: V3_BLOCKS
            x = self._modules[name](x)
            if with_aux and name == "Mixed_6e":
                aux = self.AuxLogits(x)  # N x num_classes, from N x 768 x 17 x 17
        return x, aux  # N x 2048 x 8 x 8

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor):
        self.check_input(x)
        with_aux = self._runs_aux()
        x, aux = self._features(x, with_aux)
        logits = self.forward_head(x)
        return AuxOutput(logits, (aux,)) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.AuxLogits is not None and num_classes > 0:  # with 0 the aux head is not run
            self.AuxLogits.fc = fresh_class_layer(self.AuxLogits.fc, num_classes)


class InceptionV4(_InceptionNet):
    """Inception-v4 (paper Fig. 9) in timm's layout: ``features`` (stem, 4 x A,
    Reduction-A, 7 x B, Reduction-B, 3 x C) -> global average pool -> dropout (the
    paper's keep probability 0.8) -> ``last_linear``."""

    classifier_name = "last_linear"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2):
        super().__init__()
        self.in_chans = in_chans
        layers: list[nn.Module] = []
        chs = in_chans
        for text in V4_STEM:
            layer = parse_layer(text)
            layers.append(layer.build(chs))
            chs = layer.out_chs(chs)
        stages = [(V4_STEM_3A, 1, {}), (V4_STEM_4A, 1, {}), (V4_STEM_5A, 1, {}), *V4_BODY]
        for table, count, widths in stages:
            for _ in range(count):
                layers.append(MixedBlock(chs, table, naming="timm", **widths))
                chs = layers[-1].out_chs
        self.features = nn.Sequential(*layers)
        self._init_head(chs, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 1536 x 8 x 8 (sizes per stage: V4_STEM..., V4_BODY)


class InceptionResNetV2(_InceptionNet):
    """Inception-ResNet-v2 in timm's (TF-slim's) layout: Inception-v3 stem -> mixed_5b
    -> ``depths[0]`` x Inception-ResNet-A -> Reduction-A -> ``depths[1]`` x B ->
    Reduction-B -> ``depths[2]`` x C (the last one, ``block8``, unscaled and without
    ReLU) -> 1x1 conv 1536 -> global average pool -> dropout -> ``classif``.

    ``depths=(5, 10, 5)`` gives the block counts of the paper's Figure 15 (the
    widths stay TF-slim's); ``scales`` are the residual scales of A, B and C.
    """

    classifier_name = "classif"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 depths: Sequence[int] = IRV2_DEPTHS, scales: Sequence[float] = IRV2_SCALES):
        super().__init__()
        depths, scales = tuple(depths), tuple(scales)
        if len(depths) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f"depths must be three positive integers (A, B, C blocks), got {depths!r}")
        if len(scales) != 3 or any(not isinstance(s, (int, float)) or isinstance(s, bool) for s in scales):
            raise ValueError(f"scales must be three numbers (A, B, C residual scales), got {scales!r}")
        self.in_chans = in_chans
        chs = self._add_stem([(timm, layer) for _, timm, layer in V3_STEM], in_chans)  # 35 x 35 x 192
        self.mixed_5b = MixedBlock(chs, IRV2_MIXED_5B)  # 35 x 35 x 320
        chs = self.mixed_5b.out_chs
        self.repeat = nn.Sequential(*(ResidualMixedBlock(chs, IRV2_A, scales[0]) for _ in range(depths[0])))
        self.mixed_6a = MixedBlock(chs, REDUCTION_A, **IRV2_REDUCTION_A)  # 17 x 17 x 1088
        chs = self.mixed_6a.out_chs
        self.repeat_1 = nn.Sequential(*(ResidualMixedBlock(chs, IRV2_B, scales[1]) for _ in range(depths[1])))
        self.mixed_7a = MixedBlock(chs, IRV2_REDUCTION_B)  # 8 x 8 x 2080
        chs = self.mixed_7a.out_chs
        self.repeat_2 = nn.Sequential(*(ResidualMixedBlock(chs, IRV2_C, scales[2]) for _ in range(depths[2] - 1)))
        self.block8 = ResidualMixedBlock(chs, IRV2_C, scale=1.0, activate=False)
        self.conv2d_7b = ConvBnAct(chs, 1536, 1, eps=BN_EPS)
        self._init_head(1536, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._forward_stem(x)  # N x 192 x 35 x 35
        x = self.mixed_5b(x)  # N x 320 x 35 x 35
        x = self.repeat(x)  # N x 320 x 35 x 35
        x = self.mixed_6a(x)  # N x 1088 x 17 x 17
        x = self.repeat_1(x)  # N x 1088 x 17 x 17
        x = self.mixed_7a(x)  # N x 2080 x 8 x 8
        x = self.repeat_2(x)  # N x 2080 x 8 x 8
        x = self.block8(x)  # N x 2080 x 8 x 8
        return self.conv2d_7b(x)  # N x 1536 x 8 x 8


# ----------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------

V3_PAPER = Paper(
    title="Rethinking the Inception Architecture for Computer Vision",
    authors="Szegedy, Vanhoucke, Ioffe, Shlens, Wojna",
    year=2015,
    arxiv="1512.00567",
    venue="CVPR 2016",
)
V4_PAPER = Paper(
    title="Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    authors="Szegedy, Ioffe, Vanhoucke, Alemi",
    year=2016,
    arxiv="1602.07261",
    venue="AAAI 2017",
)


def _published(params: int, macs: int, top1: float, top5: float, reference: str) -> Published:
    return Published(
        params=params, params_exact=True, macs=macs, top1=top1, top5=top5,
        dataset="ImageNet (ILSVRC-2012 val, non-blacklisted subset)",
        source=f"params/MACs: {reference} (tests/reference); accuracy: Szegedy et al. 2016 "
               "(arXiv:1602.07261) Table 2, single crop, single model",
    )


_COMMON = dict(family="inception", input_size=(3, 299, 299), dataset="imagenet")
# Google's TF-slim weights (timm's inception_v4 / inception_resnet_v2) take inputs scaled
# to [-1, 1] and a bicubic resize; torchvision's inception_v3 weights take ImageNet statistics.
_GOOGLE_PREPROCESSING = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


@register_model(
    **_COMMON,
    paper=V3_PAPER,
    # The auxiliary head needs 299 in training mode (see InceptionV3).
    min_input_size=InceptionV3.MIN_SIZE_WITH_AUX,
    published=_published(27_161_264, 5_713_216_096, 78.8, 94.4, "torchvision inception_v3"),
    aux_loss_weights=(InceptionV3.AUX_LOSS_WEIGHT,),
    layout="torchvision",
)
def inception_v3(*, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, drop_rate: float = 0.5) -> InceptionV3:
    """Inception-v3 (torchvision layout, with the auxiliary head)."""
    return InceptionV3(num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
                       transform_input=transform_input, drop_rate=drop_rate)


@register_model(
    **_COMMON,
    paper=V4_PAPER,
    min_input_size=MIN_INPUT_SIZE,
    published=_published(42_679_816, 12_253_974_624, 80.0, 95.0, "timm inception_v4"),
    layout="timm",
    preprocessing=_GOOGLE_PREPROCESSING,
)
def inception_v4(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> InceptionV4:
    """Inception-v4 (timm layout)."""
    return InceptionV4(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register_model(
    **_COMMON,
    paper=V4_PAPER,
    min_input_size=MIN_INPUT_SIZE,
    published=_published(55_843_464, 13_155_794_016, 80.1, 95.1, "timm inception_resnet_v2"),
    layout="timm",
    preprocessing=_GOOGLE_PREPROCESSING,
)
def inception_resnet_v2(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                        depths: Sequence[int] = IRV2_DEPTHS,
                        scales: Sequence[float] = IRV2_SCALES) -> InceptionResNetV2:
    """Inception-ResNet-v2 (timm / TF-slim layout: 10/20/10 blocks, scales 0.17/0.10/0.20)."""
    return InceptionResNetV2(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                             depths=depths, scales=scales)
