"""SqueezeNet: Fire modules, and the paper's bypass variants.

Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer (2016), "SqueezeNet: AlexNet-level
accuracy with 50x fewer parameters and <0.5MB model size", arXiv:1602.07360,
sections 3 and 6 (Table 1, Figure 2, Table 3).

A Fire module squeezes with 1x1 convolutions, then expands with 1x1 and 3x3
convolutions side by side and concatenates them. The layout of ``features`` and
``classifier`` is torchvision's, so its checkpoints load into ``squeezenet1_0`` and
``squeezenet1_1`` unchanged.

* ``squeezenet1_0``: Table 1 of the paper (conv1 96@7x7/2, fire2-fire9).
* ``squeezenet1_1``: the authors' v1.1 (conv1 64@3x3/2, pools moved after fire3 and
  fire5), 2.4x less computation for the same accuracy.
* ``squeezenet1_0_bypass``: "simple bypass" (section 6): the input of fire3, fire5,
  fire7 and fire9 is added to its output. These are exactly the Fire modules whose
  input and output have the same number of channels; no parameters are added.
* ``squeezenet1_0_complex_bypass``: additionally a 1x1 convolution bypass (with bias,
  no activation) around fire2, fire4, fire6 and fire8, where the channel counts differ.

Fire modules are numbered from 2 as in the paper (conv1 is layer 1).

Departures, said honestly: the pools round up (``ceil_mode``) as in the authors' Caffe
model; the bypass is added after the expand layers' ReLU (the sum of the two Fire
outputs is the next module's input, as the paper says); the bypass branch of the
complex model is a 1x1 convolution with bias, which the paper does not spell out.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["Fire", "SqueezeNet", "SQUEEZENET_CFGS"]

PAPER = Paper(
    title="SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
    authors="F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer",
    year=2016,
    arxiv="1602.07360",
)

# conv1 (out, kernel, stride), then the body: Fire(squeeze, expand1x1, expand3x3) or
# "M" = 3x3/2 max pool. conv1 is followed by a max pool in both versions.
SQUEEZENET_CFGS: dict[str, dict] = {
    "1_0": {
        "conv1": (96, 7, 2),
        "body": ((16, 64, 64),     # fire2
                 (16, 64, 64),     # fire3
                 (32, 128, 128),   # fire4
                 "M",
                 (32, 128, 128),   # fire5
                 (48, 192, 192),   # fire6
                 (48, 192, 192),   # fire7
                 (64, 256, 256),   # fire8
                 "M",
                 (64, 256, 256)),  # fire9
    },
    "1_1": {
        "conv1": (64, 3, 2),
        "body": ((16, 64, 64),     # fire2
                 (16, 64, 64),     # fire3
                 "M",
                 (32, 128, 128),   # fire4
                 (32, 128, 128),   # fire5
                 "M",
                 (48, 192, 192),   # fire6
                 (48, 192, 192),   # fire7
                 (64, 256, 256),   # fire8
                 (64, 256, 256)),  # fire9
    },
}

BYPASS_KINDS = ("none", "simple", "complex")


class Fire(nn.Module):
    """1x1 squeeze -> ReLU -> [1x1 expand | 3x3 expand] -> ReLU -> concatenate,
    plus an optional bypass: ``"identity"``, ``"conv"`` (1x1) or ``None``."""

    def __init__(self, in_chs: int, squeeze: int, expand1x1: int, expand3x3: int, bypass: str | None = None):
        super().__init__()
        self.out_chs = expand1x1 + expand3x3
        if bypass == "identity" and in_chs != self.out_chs:
            raise ValueError(f"an identity bypass needs in == out channels, got {in_chs} and {self.out_chs}")
        self.squeeze = nn.Conv2d(in_chs, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.bypass_kind = bypass
        if bypass == "conv":
            self.bypass = nn.Conv2d(in_chs, self.out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))  # N x squeeze x H x W
        out = torch.cat(
            [self.expand1x1_activation(self.expand1x1(s)), self.expand3x3_activation(self.expand3x3(s))], 1
        )  # N x (e1 + e3) x H x W
        if self.bypass_kind == "identity":
            out = out + x
        elif self.bypass_kind == "conv":
            out = out + self.bypass(x)
        return out

    def extra_repr(self) -> str:
        return f"bypass={self.bypass_kind}" if self.bypass_kind else ""


class SqueezeNet(CnnModel):
    classifier_name = "classifier.1"  # conv10, the 1x1 convolution to one map per class

    def __init__(
        self,
        version: str = "1_0",
        num_classes: int = 1000,
        in_chans: int = 3,
        bypass: str = "none",
        dropout: float = 0.5,
    ):
        super().__init__()
        if version not in SQUEEZENET_CFGS:
            raise ValueError(f"SqueezeNet version must be one of {sorted(SQUEEZENET_CFGS)}, got {version!r}")
        if bypass not in BYPASS_KINDS:
            raise ValueError(f"bypass must be one of {BYPASS_KINDS}, got {bypass!r}")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        cfg = SQUEEZENET_CFGS[version]
        out, k, s = cfg["conv1"]
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, out, k, stride=s), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        ]
        chans = out
        for item in cfg["body"]:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
                continue
            width = item[1] + item[2]
            kind = None
            if bypass != "none" and width == chans:
                kind = "identity"
            elif bypass == "complex":
                kind = "conv"
            layers.append(Fire(chans, *item, bypass=kind))
            chans = width
        self.features = nn.Sequential(*layers)
        self.num_features = chans
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(chans, num_classes, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # The authors' Caffe model: Xavier init, the class-map convolution from N(0, 0.01).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is self.classifier[1]:
                    nn.init.normal_(m.weight, 0, 0.01)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def fires(self) -> list[Fire]:
        """The Fire modules in order: ``fires()[0]`` is the paper's fire2."""
        return [m for m in self.features if isinstance(m, Fire)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 512 x 13 x 13 at 224 (v1.0)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x.mean((2, 3))  # N x 512: the pooled maps the class convolution reads
        return self.classifier(x).flatten(1)  # N x num_classes


def _register(name: str, min_size: int, published: Published):
    return register_model(
        family="squeezenet", paper=PAPER, input_size=(3, 224, 224), min_input_size=min_size,
        dataset="imagenet", layout="torchvision", published=published, name=name,
    )


_TABLE3 = "Iandola et al. 2016, Table 3: top-1 accuracy on ImageNet val"


@_register("squeezenet1_0", 21, Published(
    params=1_248_424, params_exact=True, macs=818_924_576, top1=57.5, dataset="ImageNet val",
    source=f"torchvision's squeezenet1_0 (tests/reference/squeezenet1_0.json); {_TABLE3} (vanilla)",
))
def squeezenet1_0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.0 (Table 1 of the paper)."""
    return SqueezeNet("1_0", num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("squeezenet1_1", 17, Published(
    params=1_235_496, params_exact=True, macs=349_151_936,
    source="torchvision's squeezenet1_1 (tests/reference/squeezenet1_1.json)",
))
def squeezenet1_1(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.1: 3x3 conv1 and earlier pooling, 2.4x less computation than v1.0."""
    return SqueezeNet("1_1", num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@_register("squeezenet1_0_bypass", 21, Published(
    params=1_248_424, params_exact=True, top1=60.4, dataset="ImageNet val",
    source=f"{_TABLE3} (simple bypass); an identity bypass adds no parameters",
))
def squeezenet1_0_bypass(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.0 with identity bypasses around fire3, fire5, fire7 and fire9."""
    return SqueezeNet("1_0", num_classes=num_classes, in_chans=in_chans, bypass="simple", dropout=drop_rate)


@_register("squeezenet1_0_complex_bypass", 21, Published(
    top1=58.8, dataset="ImageNet val", source=f"{_TABLE3} (complex bypass)",
))
def squeezenet1_0_complex_bypass(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.0 with identity bypasses and 1x1 convolution bypasses around fire2/4/6/8."""
    return SqueezeNet("1_0", num_classes=num_classes, in_chans=in_chans, bypass="complex", dropout=drop_rate)
