"""GoogLeNet (Inception v1): Inception modules and two auxiliary classifiers.

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich (2014),
"Going Deeper with Convolutions", arXiv:1409.4842, section 5, Table 1 and Figure 3.

An Inception module runs four branches side by side and concatenates them:
1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3/1 max pool -> 1x1 projection.
Nine modules, with the widths of Table 1 (:data:`INCEPTION_TABLE`), sit on a
convolutional stem; an average pool, dropout and one FC layer classify. Two auxiliary
classifiers (after 4a and 4d) add their losses with weight 0.3 during training and
are dropped at inference: in training mode ``forward`` returns an
:class:`~cnnlab.models.base.AuxOutput`, in eval mode the logits.

Two variants of one class:

* ``googlenet`` follows torchvision's layout and function, so its checkpoint loads
  unchanged. Its departures from the paper are torchvision's: BatchNorm after every
  convolution (bias-free convolutions, eps 1e-3), no LRN, a 3x3 convolution where the
  paper's "5x5" branch has a 5x5, a 2x2 (not 3x3) fourth max pool, adaptive average
  pools in the auxiliary heads, and dropout 0.2 (not 0.4) before the FC.
  13,004,888 parameters including the auxiliary heads. torchvision's pretrained
  checkpoint was trained on inputs scaled to [-1, 1] and torchvision builds it with
  ``transform_input=True``, which maps ImageNet-normalized input to that range; cnnlab
  has no such switch, so feed that checkpoint ``(x_in_0_1 - 0.5) / 0.5`` yourself.
* ``googlenet_paper`` is the paper's network: convolutions with bias and ReLU, LRN in
  the stem (constants of the authors' released Caffe model: size 5, alpha 1e-4 as an
  average, i.e. 2e-5 summed, beta 0.75, k 1), real 5x5 convolutions, 3x3/2 max pools
  (rounding up, as Caffe does), dropout 0.4; auxiliary heads with a 5x5/3 average
  pool. 6,998,552 parameters without the auxiliary heads (13,378,280 with them).

Both variants close with an adaptive average pool (the paper's 7x7 average pool at
224x224) and the paper variant's auxiliary heads pool adaptively to 4x4 after the
5x5/3 pool (the identity at 224), so other input sizes work.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.conv_bn_act import ConvBnAct
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.models.base import AuxOutput, CnnModel, check_num_classes, fresh_class_layer
from cnnlab.registry import Paper, Published, register_model

__all__ = ["GoogLeNet", "Inception", "InceptionAux", "INCEPTION_TABLE"]

PAPER = Paper(
    title="Going Deeper with Convolutions",
    authors="C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke, "
    "A. Rabinovich",
    year=2014,
    arxiv="1409.4842",
)

# Table 1 of the paper. Output width = #1x1 + #3x3 + #5x5 + pool proj.
INCEPTION_TABLE: tuple[tuple[str, int, int, int, int, int, int, int], ...] = (
    # module         in  #1x1 #3x3red #3x3 #5x5red #5x5 poolproj    out
    ("inception3a", 192,   64,     96, 128,     16,  32,      32),  # 256
    ("inception3b", 256,  128,    128, 192,     32,  96,      64),  # 480
    ("inception4a", 480,  192,     96, 208,     16,  48,      64),  # 512
    ("inception4b", 512,  160,    112, 224,     24,  64,      64),  # 512
    ("inception4c", 512,  128,    128, 256,     24,  64,      64),  # 512
    ("inception4d", 512,  112,    144, 288,     32,  64,      64),  # 528
    ("inception4e", 528,  256,    160, 320,     32, 128,     128),  # 832
    ("inception5a", 832,  256,    160, 320,     32, 128,     128),  # 832
    ("inception5b", 832,  384,    192, 384,     48, 128,     128),  # 1024
)


class ConvReLU(nn.Module):
    """Convolution with bias -> ReLU (the paper's units), keys ``conv.weight``/``conv.bias``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0, bn: bool = True) -> nn.Module:
    if bn:
        return ConvBnAct(in_chs, out_chs, kernel_size, stride=stride, padding=padding, eps=1e-3)
    return ConvReLU(in_chs, out_chs, kernel_size, stride=stride, padding=padding)


class Inception(nn.Module):
    def __init__(self, in_chs: int, c1x1: int, c3x3red: int, c3x3: int, c5x5red: int, c5x5: int,
                 pool_proj: int, bn: bool = True, k5: int = 5):
        super().__init__()
        self.branch1 = _conv(in_chs, c1x1, 1, bn=bn)
        self.branch2 = nn.Sequential(_conv(in_chs, c3x3red, 1, bn=bn), _conv(c3x3red, c3x3, 3, padding=1, bn=bn))
        self.branch3 = nn.Sequential(_conv(in_chs, c5x5red, 1, bn=bn), _conv(c5x5red, c5x5, k5, padding=k5 // 2, bn=bn))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), _conv(in_chs, pool_proj, 1, bn=bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool -> 1x1 conv 128 -> FC 1024 -> ReLU -> dropout 0.7 -> FC."""

    def __init__(self, in_chs: int, num_classes: int, bn: bool = True, paper_pool: bool = False, dropout: float = 0.7):
        super().__init__()
        # The paper pools 5x5/3 (14x14 -> 4x4 at 224); torchvision pools adaptively to 4x4.
        self.pool = nn.Sequential(nn.AvgPool2d(5, stride=3, ceil_mode=True), nn.AdaptiveAvgPool2d(4)) \
            if paper_pool else nn.AdaptiveAvgPool2d(4)
        self.conv = _conv(in_chs, 128, 1, bn=bn)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x)).flatten(1)  # N x 2048
        x = self.dropout(self.act(self.fc1(x)))  # N x 1024
        return self.fc2(x)  # N x num_classes


class GoogLeNet(CnnModel):
    """GoogLeNet; ``paper=False`` gives torchvision's layout, ``paper=True`` the paper's network."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, paper: bool = False, aux_logits: bool = True,
                 drop_rate: float | None = None):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.num_features = 1024
        bn = not paper
        k5 = 5 if paper else 3
        lrn = (lambda: LocalResponseNorm(5, alpha=2e-5, beta=0.75, k=1.0)) if paper else nn.Identity
        self.conv1 = _conv(in_chans, 64, 7, stride=2, padding=3, bn=bn)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = lrn()
        self.conv2 = _conv(64, 64, 1, bn=bn)
        self.conv3 = _conv(64, 192, 3, padding=1, bn=bn)
        self.norm2 = lrn()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, *widths in INCEPTION_TABLE:
            self.add_module(name, Inception(*widths, bn=bn, k5=k5))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(3 if paper else 2, stride=2, ceil_mode=True)
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, bn=bn, paper_pool=paper)  # after 4a
            self.aux2 = InceptionAux(528, num_classes, bn=bn, paper_pool=paper)  # after 4d
            self.aux_loss_weights = (0.3, 0.3)
        else:
            self.aux_loss_weights = ()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # head dropout: 0.4 in the paper, 0.2 in torchvision's model, unless drop_rate says otherwise
        self.dropout = nn.Dropout((0.4 if paper else 0.2) if drop_rate is None else drop_rate)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision: truncated N(0, 0.01) for convolutions and FCs (the paper does
        # not give its initialization).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.01, a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _body(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        aux = []
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.norm1(self.maxpool1(x))  # N x 64 x 56 x 56
        x = self.conv3(self.conv2(x))  # N x 192 x 56 x 56
        x = self.maxpool2(self.norm2(x))  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        if with_aux:
            aux.append(self.aux1(x))  # N x num_classes
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        if with_aux:
            aux.append(self.aux2(x))  # N x num_classes
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        x = self.inception5b(x)  # N x 1024 x 7 x 7
        return x, tuple(aux)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._body(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.avgpool(x).flatten(1))  # N x 1024
        return x if pre_logits else self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        self.check_input(x)
        with_aux = self.training and self.aux_logits and self.num_classes > 0
        features, aux = self._body(x, with_aux)
        logits = self.forward_head(features)
        return AuxOutput(logits, aux) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the FC and the auxiliary heads' last FCs with fresh ones for ``num_classes``."""
        super().reset_classifier(num_classes)
        if self.aux_logits and num_classes > 0:  # with 0 (pooled features) the aux heads are not run
            for head in (self.aux1, self.aux2):
                head.fc2 = fresh_class_layer(head.fc2, num_classes)


_ACCURACY = dict(top5=93.33, dataset="ILSVRC-2014 test")
_ACCURACY_SOURCE = "Szegedy et al. 2014, Table 2: 6.67% top-5 error (ensemble of 7 models, 144 crops)"


@register_model(
    family="googlenet",
    paper=PAPER,
    input_size=(3, 224, 224),
    min_input_size=15,
    dataset="imagenet",
    layout="torchvision",
    aux_loss_weights=(0.3, 0.3),
    published=Published(
        params=13_004_888, params_exact=True, macs=1_498_376_192, **_ACCURACY,
        source="torchvision's googlenet incl. auxiliary heads (tests/reference/googlenet.json); " + _ACCURACY_SOURCE,
    ),
)
def googlenet(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float | None = None) -> GoogLeNet:
    """GoogLeNet in torchvision's layout (BatchNorm, 3x3 in the "5x5" branch) with both auxiliary heads."""
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, paper=False, drop_rate=drop_rate)


@register_model(
    family="googlenet",
    paper=PAPER,
    input_size=(3, 224, 224),
    min_input_size=47,
    dataset="imagenet",
    aux_loss_weights=(0.3, 0.3),
    published=Published(
        params=13_378_280, params_exact=True, **_ACCURACY,
        source="6,998,552 parameters without the auxiliary heads (computed from Table 1 of "
        "Szegedy et al. 2014) + 3,188,840 and 3,190,888 in the two heads (section 5); " + _ACCURACY_SOURCE,
    ),
)
def googlenet_paper(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float | None = None) -> GoogLeNet:
    """GoogLeNet as published: no BatchNorm, LRN in the stem, real 5x5 branches, both auxiliary heads."""
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, paper=True, drop_rate=drop_rate)
