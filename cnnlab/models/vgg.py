"""VGG: stacks of 3x3 convolutions.

Simonyan & Zisserman (2014), "Very Deep Convolutional Networks for Large-Scale Image
Recognition", arXiv:1409.1556, Table 1 (configurations A, B, D, E).

Every convolution is 3x3, stride 1, padding 1, followed by ReLU; five 2x2/2 max
pools halve the resolution; three fully connected layers (4096, 4096, classes) with
dropout 0.5 classify. The four depths and their BatchNorm variants are one table and
one class. The layout (``features`` / ``avgpool`` / ``classifier``) is torchvision's,
so its checkpoints load unchanged.

Departures from the paper, shared with torchvision:

* An adaptive average pool to 7x7 sits between the convolutions and fc6, so inputs
  other than 224x224 work; at 224 the map is already 7x7 and it is the identity.
  (The paper evaluates other sizes by turning the FCs into convolutions instead.)
* The ``_bn`` variants add BatchNorm after every convolution; the paper predates it.
* Configuration A-LRN and C (1x1 convolutions) are not registered.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.mlp_head import MlpHead
from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["VGG", "VGG_CFGS"]

PAPER = Paper(
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    authors="K. Simonyan, A. Zisserman",
    year=2014,
    arxiv="1409.1556",
)

# Table 1 of the paper: output channels of each 3x3 convolution, "M" = 2x2/2 max pool.
VGG_CFGS: dict[int, tuple[int | str, ...]] = {
    11: (64,     "M", 128,      "M", 256, 256,           "M", 512, 512,           "M", 512, 512,           "M"),  # A
    13: (64, 64, "M", 128, 128, "M", 256, 256,           "M", 512, 512,           "M", 512, 512,           "M"),  # B
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256,      "M", 512, 512, 512,      "M", 512, 512, 512,      "M"),  # D
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),  # E
}


class VGG(CnnModel):
    classifier_name = "classifier.6"  # fc8, the last Linear of the MlpHead

    def __init__(
        self,
        depth: int = 16,
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        if depth not in VGG_CFGS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_CFGS)}, got {depth!r}")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.num_features = 4096
        layers: list[nn.Module] = []
        chans = in_chans
        for v in VGG_CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers.append(nn.Conv2d(chans, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            chans = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = MlpHead(chans * 7 * 7, 4096, num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper initializes from N(0, 0.01) with zero biases (and, for the deeper
        # nets, from the trained net A); Kaiming init for the convolutions (He et al.
        # 2015) trains the deep configurations from scratch without that step.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 512 x 7 x 7 at 224

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)  # N x 25088 (512 x 7 x 7)
        if pre_logits:
            return self.classifier.pre_logits(x)  # N x 4096
        return self.classifier(x)  # N x num_classes


def _vgg_info(params: int, macs: int, name: str, top5_error: float | None = None) -> Published:
    source = f"torchvision's {name} (tests/reference/{name}.json)"
    if top5_error is None:
        return Published(params=params, params_exact=True, macs=macs, source=source)
    return Published(
        params=params, params_exact=True, macs=macs, top5=100 - top5_error, dataset="ILSVRC-2012 val",
        source=source + f"; top-5 error {top5_error}% single-scale (Simonyan & Zisserman 2014, sec. 4.1)",
    )


def _register(name: str, published: Published):
    return register_model(
        family="vgg", paper=PAPER, input_size=(3, 224, 224), min_input_size=32,
        dataset="imagenet", layout="torchvision", published=published, name=name,
    )


@_register("vgg11", _vgg_info(132_863_336, 7_609_090_048, "vgg11"))
def vgg11(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-11 (configuration A)."""
    return VGG(11, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg11_bn", _vgg_info(132_868_840, 7_609_090_048, "vgg11_bn"))
def vgg11_bn(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-11 (configuration A) with BatchNorm after every convolution."""
    return VGG(11, batch_norm=True, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg13", _vgg_info(133_047_848, 11_308_466_176, "vgg13"))
def vgg13(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-13 (configuration B)."""
    return VGG(13, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg13_bn", _vgg_info(133_053_736, 11_308_466_176, "vgg13_bn"))
def vgg13_bn(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-13 (configuration B) with BatchNorm after every convolution."""
    return VGG(13, batch_norm=True, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg16", _vgg_info(138_357_544, 15_470_264_320, "vgg16", top5_error=8.1))
def vgg16(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-16 (configuration D)."""
    return VGG(16, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg16_bn", _vgg_info(138_365_992, 15_470_264_320, "vgg16_bn"))
def vgg16_bn(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-16 (configuration D) with BatchNorm after every convolution."""
    return VGG(16, batch_norm=True, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg19", _vgg_info(143_667_240, 19_632_062_464, "vgg19", top5_error=8.0))
def vgg19(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-19 (configuration E)."""
    return VGG(19, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("vgg19_bn", _vgg_info(143_678_248, 19_632_062_464, "vgg19_bn"))
def vgg19_bn(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG-19 (configuration E) with BatchNorm after every convolution."""
    return VGG(19, batch_norm=True, num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)
