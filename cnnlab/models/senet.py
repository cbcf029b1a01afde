"""SENet-154: Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018
(arXiv:1709.01507), the ILSVRC 2017 classification winner.

SENet-154 is a 64x4d SE-ResNeXt with 3-8-36-3 bottlenecks (a ResNeXt-152 in depth) and
the modifications of the paper's Appendix: the 7x7 stem conv is replaced by three 3x3
convs (64, 64, 128 channels), the number of 1x1 channels in each bottleneck is halved
(the first 1x1 conv gives 2 * planes, not 4 * planes, channels), the 1x1/2 projection
shortcut of stages 2-4 becomes a 3x3/2 conv, and dropout 0.2 comes before the classifier.
Every bottleneck rescales its residual branch with a squeeze-and-excitation module
(reduction 16) before the addition.

The state_dict follows timm's ``legacy_senet154`` (Cadene's pretrainedmodels port of the
authors' Caffe model): ``layer0.conv1``..``layer0.bn3``, ``layer{1-4}.{i}.conv1..bn3``,
``layer{i}.{j}.se_module.fc1/fc2`` (1x1 convs with bias), ``downsample.0/1`` and
``last_linear``, so those checkpoints load unchanged.

Deviations, said honestly: the classifier reads globally average-pooled features
(adaptive pooling) instead of a fixed 7x7 average pool, so inputs other than 224 work;
at 224 it is the same operation. The stride of a downsampling bottleneck is on its
grouped 3x3 conv, and the stem max pool rounds up (ceil mode), as in the released model.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.layers import SqueezeExcite
from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["SEBottleneck", "SENet"]

PAPER = Paper(
    title="Squeeze-and-Excitation Networks",
    authors="Jie Hu, Li Shen, Samuel Albanie, Gang Sun, Enhua Wu",
    year=2018,
    arxiv="1709.01507",
    venue="CVPR 2018",
)


class SEBottleneck(nn.Module):
    """SENet-154 bottleneck: 1x1 (2*planes) -> grouped 3x3 (4*planes, stride) -> 1x1
    (4*planes), each with BN (and ReLU but the last), then SE on the branch, + shortcut, ReLU."""

    expansion = 4

    def __init__(self, in_chs: int, planes: int, groups: int, reduction: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        mid, out = planes * 2, planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, out, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.conv3 = nn.Conv2d(out, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.se_module = SqueezeExcite(out, reduction=reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # N x 2p x H x W
        out = self.relu(self.bn2(self.conv2(out)))  # N x 4p x H/s x W/s
        out = self.bn3(self.conv3(out))  # N x 4p x H/s x W/s
        return self.relu(self.se_module(out) + shortcut)


class SENet(CnnModel):
    """The legacy SENet layout: ``layer0`` stem, four stages of SE bottlenecks,
    global average pool, dropout, ``last_linear``."""

    classifier_name = "last_linear"

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 8, 36, 3),
        groups: int = 64,
        reduction: int = 16,
        stem_width: int = 64,
        downsample_kernel_size: int = 3,
        drop_rate: float = 0.2,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        w = stem_width
        # Three 3x3 convs instead of one 7x7 (the paper's Appendix), then a ceil-mode pool.
        self.layer0 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_chans, w, 3, stride=2, padding=1, bias=False)),
            ("bn1", nn.BatchNorm2d(w)),
            ("relu1", nn.ReLU(inplace=True)),
            ("conv2", nn.Conv2d(w, w, 3, padding=1, bias=False)),
            ("bn2", nn.BatchNorm2d(w)),
            ("relu2", nn.ReLU(inplace=True)),
            ("conv3", nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)),
            ("bn3", nn.BatchNorm2d(2 * w)),
            ("relu3", nn.ReLU(inplace=True)),
            ("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ]))
        self.in_chs = 2 * w
        # Stage 1 projects with a 1x1 conv (stride 1); stages 2-4 with a k x k conv, stride 2.
        self.layer1 = self._make_stage(64, layers[0], groups, reduction, 1, 1)
        self.layer2 = self._make_stage(128, layers[1], groups, reduction, 2, downsample_kernel_size)
        self.layer3 = self._make_stage(256, layers[2], groups, reduction, 2, downsample_kernel_size)
        self.layer4 = self._make_stage(512, layers[3], groups, reduction, 2, downsample_kernel_size)
        self.num_features = self.in_chs
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.last_linear = nn.Linear(self.num_features, self.num_classes)
        self._init_weights()

    def _make_stage(self, planes: int, blocks: int, groups: int, reduction: int, stride: int,
                    kernel: int) -> nn.Sequential:
        out = planes * SEBottleneck.expansion
        downsample = None
        if stride != 1 or self.in_chs != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_chs, out, kernel, stride=stride, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(out),
            )
        stage = [SEBottleneck(self.in_chs, planes, groups, reduction, stride, downsample)]
        stage += [SEBottleneck(out, planes, groups, reduction) for _ in range(blocks - 1)]
        self.in_chs = out
        return nn.Sequential(*stage)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer0(x)  # N x 128 x 56 x 56 (at 224)
        x = self.layer1(x)  # N x 256 x 56 x 56
        x = self.layer2(x)  # N x 512 x 28 x 28
        x = self.layer3(x)  # N x 1024 x 14 x 14
        return self.layer4(x)  # N x 2048 x 7 x 7

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avg_pool(x), 1)  # N x 2048
        if pre_logits:
            return x
        return self.last_linear(self.dropout(x))


@register_model(
    family="senet", paper=PAPER, input_size=(3, 224, 224), min_input_size=3, dataset="imagenet",
    layout="timm",
    published=Published(params=115_088_984, params_exact=True, macs=20_688_363_520, top1=81.32, top5=95.53,
                        dataset="ImageNet-1k val (224, single crop)",
                        source="params, MACs: timm legacy_senet154 manifest (tests/reference/senet154.json); "
                               "accuracy: Hu et al. 2018, Table 8 (18.68/4.47 top-1/top-5 err)"),
)
def senet154(*, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> SENet:
    """SENet-154: SE-ResNeXt 64x4d with 3-8-36-3 blocks, 3-conv stem, dropout 0.2."""
    return SENet((3, 8, 36, 3), groups=64, reduction=16, num_classes=num_classes, in_chans=in_chans, **kwargs)
