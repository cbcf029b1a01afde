"""AlexNet and ZFNet: five convolutions and three fully connected layers.

* Krizhevsky, Sutskever & Hinton (2012), "ImageNet Classification with Deep
  Convolutional Neural Networks", NeurIPS 2012, section 3.
* Zeiler & Fergus (2013), "Visualizing and Understanding Convolutional Networks",
  arXiv:1311.2901, section 3 and Figure 3.

One class, four tables:

* ``alexnet`` is torchvision's single-tower AlexNet (64-192-384-256-256, no LRN): the
  same state_dict keys and shapes, so torchvision's checkpoint loads unchanged. It
  departs from the paper in its widths, its padding (conv1 pads 2 on a 224 input),
  and by dropping the normalization layers and the two-GPU grouping.
* ``alexnet_original`` is the paper's network: 227x227 input (the paper's "224" does
  not divide: (224 - 11) / 4 + 1 is not an integer), LRN after conv1 and conv2
  (then max pooling), and the two-GPU split written as ``groups=2`` on conv2, conv4
  and conv5, which only see the maps "on their own GPU". 60,965,224 parameters.
* ``zfnet`` is Figure 3 of Zeiler & Fergus: conv1 7x7/2, conv2 stride 2, no grouping,
  and contrast normalization after the pooling of layers 1 and 2.
* ``zfnet_wide`` is the lecture's variant with 512, 1024, 512 filters in conv3-5
  (Zeiler & Fergus, Table 2, model (b) widened the same layers).

Departures shared by the paper models, said honestly:

* All models end their convolutions with an adaptive average pool to 6x6 (as
  torchvision's does) so they accept other input sizes; at the paper's input size the
  feature map is already 6x6 and the pool is the identity.
* ZFNet's max pools round up (``ceil_mode``) as in Caffe: that is what turns 110 into
  55 and 26 into 13, the sizes of the paper's Figure 3.
* ZFNet's "contrast normalization across feature maps" is not specified further in
  the paper; it is written here as AlexNet's LRN with AlexNet's constants.
* The paper models start from their papers' initialization (``init_gaussian``: weights
  N(0, 0.01); AlexNet's biases 1 in conv2/4/5 and fc6/7); ``alexnet`` keeps PyTorch's
  default initialization, as torchvision does.
* The paper's dropout sits in front of fc6 and fc7 (torchvision's order), the same
  thing as "dropout on the outputs of the first two fully connected layers".
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.mlp_head import MlpHead
from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["AlexNet", "ALEXNET_CFGS"]

ALEXNET_PAPER = Paper(
    title="ImageNet Classification with Deep Convolutional Neural Networks",
    authors="A. Krizhevsky, I. Sutskever, G. E. Hinton",
    year=2012,
    venue="NeurIPS 2012",
)
ZFNET_PAPER = Paper(
    title="Visualizing and Understanding Convolutional Networks",
    authors="M. D. Zeiler, R. Fergus",
    year=2013,
    arxiv="1311.2901",
)

# One row per convolution: output maps, kernel, stride, padding, groups, and what
# follows its ReLU in order ("norm" = LRN, "pool" = 3x3/2 max pool).
ALEXNET_CFGS: dict[str, tuple[tuple[int, int, int, int, int, str], ...]] = {
    #                     out    k  s  p  groups  then
    "torchvision": ((    64,  11, 4, 2, 1, "pool"),
                    (   192,   5, 1, 2, 1, "pool"),
                    (   384,   3, 1, 1, 1, ""),
                    (   256,   3, 1, 1, 1, ""),
                    (   256,   3, 1, 1, 1, "pool")),
    "paper":       ((    96,  11, 4, 0, 1, "norm pool"),
                    (   256,   5, 1, 2, 2, "norm pool"),
                    (   384,   3, 1, 1, 1, ""),
                    (   384,   3, 1, 1, 2, ""),
                    (   256,   3, 1, 1, 2, "pool")),
    "zfnet":       ((    96,   7, 2, 1, 1, "pool norm"),
                    (   256,   5, 2, 0, 1, "pool norm"),
                    (   384,   3, 1, 1, 1, ""),
                    (   384,   3, 1, 1, 1, ""),
                    (   256,   3, 1, 1, 1, "pool")),
    "zfnet_wide":  ((    96,   7, 2, 1, 1, "pool norm"),
                    (   256,   5, 2, 0, 1, "pool norm"),
                    (   512,   3, 1, 1, 1, ""),
                    (  1024,   3, 1, 1, 1, ""),
                    (   512,   3, 1, 1, 1, "pool")),
}


class AlexNet(CnnModel):
    """``features`` (convolutions) -> ``avgpool`` (to 6x6) -> ``classifier`` (3 FCs),
    the module names of torchvision's AlexNet.

    Args:
        cfg: a key of :data:`ALEXNET_CFGS`.
        ceil_pool: round pooled sizes up (Caffe) instead of down.
        lrn: LRN constants (size, alpha as in the paper, beta, k) where a row says "norm".
    """

    classifier_name = "classifier.6"  # fc8, the last Linear of the MlpHead

    def __init__(
        self,
        cfg: str = "torchvision",
        num_classes: int = 1000,
        in_chans: int = 3,
        ceil_pool: bool = False,
        fc_width: int = 4096,
        dropout: float = 0.5,
        lrn: tuple[int, float, float, float] = (5, 1e-4, 0.75, 2.0),
    ):
        super().__init__()
        if cfg not in ALEXNET_CFGS:
            raise ValueError(f"unknown AlexNet config {cfg!r}; choose from {sorted(ALEXNET_CFGS)}")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.num_features = fc_width
        layers: list[nn.Module] = []
        chans = in_chans
        for out, k, s, p, groups, then in ALEXNET_CFGS[cfg]:
            # The first layer reads the image whole even in the two-GPU model.
            layers += [nn.Conv2d(chans, out, k, stride=s, padding=p, groups=groups), nn.ReLU(inplace=True)]
            for op in then.split():
                if op == "norm":
                    layers.append(LocalResponseNorm(*lrn))
                else:
                    layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=ceil_pool))
            chans = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = MlpHead(chans * 6 * 6, fc_width, num_classes, dropout, dropout_first=True)

    def init_gaussian(self, std: float = 0.01, bias_one: tuple[int, ...] = ()) -> None:
        """The papers' initialization: weights from N(0, std); the biases of the weight
        layers numbered in ``bias_one`` (1 = conv1 ... 8 = fc8) set to 1, the others to 0."""
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            for number, layer in enumerate(layers, start=1):
                nn.init.normal_(layer.weight, 0.0, std)
                nn.init.constant_(layer.bias, 1.0 if number in bias_one else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # alexnet_original at 227: N x 256 x 6 x 6

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)  # N x 9216 (256 x 6 x 6)
        if pre_logits:
            return self.classifier.pre_logits(x)  # N x 4096 (fc7 after ReLU)
        return self.classifier(x)  # N x num_classes


@register_model(
    family="alexnet",
    paper=ALEXNET_PAPER,
    input_size=(3, 224, 224),
    min_input_size=63,
    dataset="imagenet",
    layout="torchvision",
    published=Published(
        params=61_100_840, params_exact=True, macs=714_188_480,
        source="torchvision's AlexNet (tests/reference/alexnet.json); no accuracy of its own in the paper",
    ),
)
def alexnet(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> AlexNet:
    """AlexNet in torchvision's single-tower layout (64-192-384-256-256, no LRN)."""
    return AlexNet("torchvision", num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)


@register_model(
    family="alexnet",
    paper=ALEXNET_PAPER,
    input_size=(3, 227, 227),
    min_input_size=67,
    dataset="imagenet",
    published=Published(
        params=60_965_224, params_exact=True, top1=59.3, top5=81.8, dataset="ILSVRC-2012 val",
        source="Krizhevsky et al. 2012, Table 2: 1 CNN, 40.7% / 18.2% top-1 / top-5 error on "
        "ILSVRC-2012 val; parameter count computed from section 3.5",
    ),
)
def alexnet_original(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> AlexNet:
    """AlexNet as published: 227 input, LRN, conv2/4/5 split in two groups (two GPUs)."""
    model = AlexNet("paper", num_classes=num_classes, in_chans=in_chans, dropout=drop_rate)
    # Section 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
    # FCs ("to accelerate the early stages of learning"), 0 elsewhere.
    model.init_gaussian(0.01, bias_one=(2, 4, 5, 6, 7))
    return model


@register_model(
    family="zfnet",
    paper=ZFNET_PAPER,
    input_size=(3, 224, 224),
    min_input_size=47,
    dataset="imagenet",
    published=Published(
        params=62_357_608, params_exact=True,
        source="parameter count computed from Zeiler & Fergus 2013, Figure 3",
    ),
)
def zfnet(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> AlexNet:
    """ZFNet (Figure 3): conv1 7x7/2, conv2 5x5/2, contrast normalization after pools 1 and 2."""
    model = AlexNet("zfnet", num_classes=num_classes, in_chans=in_chans, ceil_pool=True, dropout=drop_rate)
    model.init_gaussian(0.01)  # section 3: "weights initialized to 1e-2 and biases set to 0"
    return model


@register_model(
    family="zfnet",
    paper=ZFNET_PAPER,
    input_size=(3, 224, 224),
    min_input_size=47,
    dataset="imagenet",
    published=Published(
        top5=88.3, dataset="ILSVRC-2013 test",
        source="the lecture's slide: top-5 error 16.4% -> 11.7% (11.7% is ZFNet's ILSVRC-2013 "
        "entry, an ensemble); parameter count not published",
    ),
)
def zfnet_wide(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> AlexNet:
    """ZFNet with 512, 1024, 512 filters in conv3, conv4, conv5 (the lecture's variant)."""
    model = AlexNet("zfnet_wide", num_classes=num_classes, in_chans=in_chans, ceil_pool=True, dropout=drop_rate)
    model.init_gaussian(0.01)  # section 3: "weights initialized to 1e-2 and biases set to 0"
    return model
