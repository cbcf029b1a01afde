"""Network in Network: "mlpconv" layers and global average pooling, on CIFAR-10.

Lin, Chen & Yan (2014), "Network In Network", ICLR 2014, arXiv:1312.4400, sections
3.1-3.2 and 4.2 (the CIFAR-10 model of the authors' released Caffe definition).

An mlpconv layer is a spatial convolution followed by two 1x1 convolutions (a small
MLP slid over the image), each with ReLU. Three of them are stacked; the last 1x1
convolution outputs one map per class and a global average pool turns the maps into
class scores, so there is no fully connected layer at all:

    mlpconv 192@5x5 -> 160 -> 96    -> max pool 3/2 -> dropout 0.5
    mlpconv 192@5x5 -> 192 -> 192   -> avg pool 3/2 -> dropout 0.5
    mlpconv 192@3x3 -> 192 -> classes -> global average pool

966,986 parameters with 10 classes.

Departures / choices, said honestly:

* The pools round up (``ceil_mode``) as Caffe does: 32 -> 16 -> 8.
* The ReLU after the last 1x1 convolution (the class maps) is kept, as in the
  released model.
* ``forward_head(x, pre_logits=True)`` returns the global average of the 192 maps that
  the class-map convolution reads (the model itself has no pooled feature vector
  before its logits).
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["NIN", "NIN_CFG"]

PAPER = Paper(
    title="Network In Network",
    authors="M. Lin, Q. Chen, S. Yan",
    year=2014,
    arxiv="1312.4400",
)

# One row per mlpconv layer: spatial kernel, widths of its convolutions, and the pool
# after it. The last mlpconv's third convolution (one map per class) is ``classifier``.
NIN_CFG: tuple[tuple[int, tuple[int, ...], str], ...] = (
    # kernel  widths            pool
    (5,       (192, 160, 96),   "max"),
    (5,       (192, 192, 192),  "avg"),
    (3,       (192, 192),       ""),  # + 1x1 num_classes (classifier) -> global avg pool
)


def mlpconv(in_chs: int, widths: tuple[int, ...], kernel_size: int) -> nn.Sequential:
    """A spatial convolution and 1x1 convolutions, each followed by ReLU."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        k = kernel_size if i == 0 else 1
        layers += [nn.Conv2d(in_chs, width, k, padding=k // 2), nn.ReLU(inplace=True)]
        in_chs = width
    return nn.Sequential(*layers)


class NIN(CnnModel):
    classifier_name = "classifier"  # a 1x1 convolution to one map per class

    def __init__(self, num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5, drop_rate: float = 0.0):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        blocks: list[nn.Module] = []
        chans = in_chans
        for k, widths, pool in NIN_CFG:
            blocks.append(mlpconv(chans, widths, k))
            chans = widths[-1]
            if pool == "max":
                blocks += [nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.Dropout(dropout)]
            elif pool == "avg":
                blocks += [nn.AvgPool2d(3, stride=2, ceil_mode=True), nn.Dropout(dropout)]
        self.features = nn.Sequential(*blocks)
        self.num_features = chans
        # drop_rate: dropout before the class maps (timm's head dropout; NIN's own
        # ``dropout`` sits between the mlpconv blocks)
        if drop_rate > 0:
            self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(chans, num_classes, 1)  # the last 1x1 of mlpconv 3
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._init_weights()

    def _init_weights(self) -> None:
        # The released model draws weights from N(0, 0.05) (N(0, 0.01) for the class maps).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.01 if m is self.classifier else 0.05)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 192 x 8 x 8 at 32

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or not self.num_classes:
            return self.pool(x).flatten(1)  # N x 192
        drop = self._modules.get("head_drop")
        x = self.act(self.classifier(drop(x) if drop is not None else x))  # N x num_classes x 8 x 8
        return self.pool(x).flatten(1)  # N x num_classes


@register_model(
    family="nin",
    paper=PAPER,
    input_size=(3, 32, 32),
    min_input_size=4,
    dataset="cifar",
    published=Published(
        params=966_986, params_exact=True, error=8.81, dataset="CIFAR-10",
        source="Lin et al. 2014, Table 2: 8.81% CIFAR-10 test error with augmentation (10.41% "
        "without); parameter count computed from the released CIFAR-10 model",
    ),
)
def nin(*, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> NIN:
    """Network in Network for CIFAR-10: three mlpconv layers and global average pooling."""
    return NIN(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
