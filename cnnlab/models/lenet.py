"""LeNet-5 as published, and a modern re-reading of it.

LeCun, Bottou, Bengio & Haffner (1998), "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE 86(11), section II.B.

``lenet5`` follows the paper layer by layer on a 32x32 input (MNIST's 28x28 digits
padded by 2):

    C1  6@28x28   5x5 convolution, squashed
    S2  6@14x14   trainable subsampling: (sum of a 2x2 window) * coefficient + bias, squashed
    C3 16@10x10   5x5 convolution, each map connected to the S2 maps of Table I only
    S4 16@5x5     trainable subsampling, squashed
    C5 120@1x1    5x5 convolution over all of S4, squashed
    F6 84         fully connected, squashed
    out           Euclidean RBF units against a fixed +-1 code (not trained)

The squashing function is f(a) = 1.7159 tanh(2/3 a). The model has exactly
60,000 trainable parameters with 10 classes; the RBF code (840 values) is a buffer.

**Logits.** An RBF unit outputs an energy, y_i = sum_j (x_j - w_ij)^2: the *smaller*,
the more likely class i. ``forward`` returns ``-y`` so that ``argmax`` picks the
predicted class and ``cross_entropy`` works as with any other model; with it the loss
is the paper's "MAP" criterion (equation 9) with exp(-j) = 1, i.e. the energy of the
right class plus a log-sum-exp over all classes (j is taken as 0).

Departures from the paper, on purpose:

* The RBF code for 10 classes is a set of 7x12 digit bitmaps drawn for cnnlab in the
  spirit of the paper's Figure 3 (the paper's exact pixels are not reproduced).
  For ``num_classes != 10`` the code is documented in :func:`rbf_code`.
* An adaptive average pool between C5 and F6 lets the model take inputs larger than
  32x32; at 32x32 it is the identity (C5 is already 1x1).
* Weights are initialized as in the paper's Appendix: uniform in +-2.4 / fan_in.

``lenet5_modern`` keeps the layer sizes but uses what a practitioner would use today:
ReLU, 2x2 max pooling, a fully connected C3 and a linear output layer.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.base import CnnModel, check_num_classes
from cnnlab.registry import Paper, Published, register_model

__all__ = ["LeNet5", "C3_TABLE", "DIGIT_BITMAPS", "rbf_code"]

PAPER = Paper(
    title="Gradient-Based Learning Applied to Document Recognition",
    authors="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner",
    year=1998,
    venue="Proc. IEEE 86(11), 1998",
)

# Table I of the paper: which S2 feature maps (rows) each C3 feature map (columns)
# reads. "X" = connected.
#                 C3 map: 0123456789012345
C3_TABLE = (
    "X...XXX..XXXX.XX",  # S2 map 0
    "XX...XXX..XXXX.X",  # S2 map 1
    "XXX...XXX..X.XXX",  # S2 map 2
    ".XXX..XXXX..X.XX",  # S2 map 3
    "..XXX..XXXX.XX.X",  # S2 map 4
    "...XXX..XXXX.XXX",  # S2 map 5
)

# The fixed output code for the ten digits: 7 wide x 12 high bitmaps, "#" = +1,
# "." = -1, read row by row into an 84-vector (F6 has 84 units for this reason).
DIGIT_BITMAPS = (
    ("..###..", ".##.##.", "##...##", "##...##", "##...##", "##...##",
     "##...##", "##...##", "##...##", "##...##", ".##.##.", "..###.."),  # 0
    ("...##..", "..###..", ".####..", "...##..", "...##..", "...##..",
     "...##..", "...##..", "...##..", "...##..", "...##..", ".######"),  # 1
    (".#####.", "##...##", ".....##", ".....##", "....##.", "...##..",
     "..##...", ".##....", "##.....", "##.....", "##.....", "#######"),  # 2
    (".#####.", "##...##", ".....##", ".....##", ".....##", "..####.",
     ".....##", ".....##", ".....##", ".....##", "##...##", ".#####."),  # 3
    ("....##.", "...###.", "..####.", ".##.##.", "##..##.", "##..##.",
     "#######", "....##.", "....##.", "....##.", "....##.", "...####"),  # 4
    ("#######", "##.....", "##.....", "##.....", "######.", ".....##",
     ".....##", ".....##", ".....##", ".....##", "##...##", ".#####."),  # 5
    ("..####.", ".##....", "##.....", "##.....", "######.", "##...##",
     "##...##", "##...##", "##...##", "##...##", "##...##", ".#####."),  # 6
    ("#######", "##...##", ".....##", "....##.", "....##.", "...##..",
     "...##..", "..##...", "..##...", "..##...", "..##...", "..##..."),  # 7
    (".#####.", "##...##", "##...##", "##...##", ".##.##.", "..###..",
     ".##.##.", "##...##", "##...##", "##...##", "##...##", ".#####."),  # 8
    (".#####.", "##...##", "##...##", "##...##", "##...##", ".######",
     ".....##", ".....##", ".....##", ".....##", "....##.", ".####.."),  # 9
)


def squash(x: torch.Tensor) -> torch.Tensor:
    """The paper's sigmoid: f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (Appendix A)."""
    return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Squash(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squash(x)


def rbf_code(num_classes: int) -> torch.Tensor:
    """The fixed +-1 code of the RBF output layer, shape (num_classes, 84).

    Class i < 10 gets the bitmap of digit i (so 10 classes give exactly the digit
    code). Classes 10, 11, ... get rows of +-1 drawn from a generator seeded with 0,
    the same rows for every ``num_classes``: the code is deterministic.
    """
    check_num_classes(num_classes)
    digits = torch.tensor(
        [[1.0 if ch == "#" else -1.0 for row in bitmap for ch in row] for bitmap in DIGIT_BITMAPS]
    )
    rows = [digits[: min(num_classes, 10)]]
    if num_classes > 10:
        gen = torch.Generator().manual_seed(0)
        bits = torch.randint(0, 2, (num_classes - 10, digits.shape[1]), generator=gen)
        rows.append(bits.float() * 2 - 1)
    return torch.cat(rows)


class Subsampling(nn.Module):
    """S2/S4: per map, (sum of a non-overlapping 2x2 window) * coefficient + bias.

    Two trainable numbers per map; the squashing follows outside."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, 2) * 4  # N x C x H/2 x W/2
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution whose output maps each read only some input maps (LeNet-5's C3).

    ``table[i][o] == "X"`` connects input map i to output map o. Output maps with the
    same number of inputs share one grouped convolution, so the parameters are
    exactly the connected kernels plus one bias per output map (1,516 for Table I).
    """

    def __init__(self, table: tuple[str, ...], kernel_size: int):
        super().__init__()
        in_maps, out_maps = len(table), len(table[0])
        if any(len(row) != out_maps for row in table):
            raise ValueError("connection table rows must all have the same length")
        inputs = [[i for i in range(in_maps) if table[i][o] == "X"] for o in range(out_maps)]
        if any(not ins for ins in inputs):
            raise ValueError("every output map of a connection table needs at least one input")
        self.in_maps, self.out_maps, self.kernel_size = in_maps, out_maps, kernel_size
        self.fan_ins = sorted({len(ins) for ins in inputs})
        self.groups: list[tuple[list[int], list[int]]] = []  # (output maps, gathered input maps)
        for k in self.fan_ins:
            outs = [o for o in range(out_maps) if len(inputs[o]) == k]
            self.groups.append((outs, [i for o in outs for i in inputs[o]]))
            self.register_parameter(f"weight{k}", nn.Parameter(torch.empty(len(outs), k, kernel_size, kernel_size)))
        order = [o for outs, _ in self.groups for o in outs]
        # Position of each output map in the concatenation of the groups' outputs.
        self.unpermute = None if order == list(range(out_maps)) else [order.index(o) for o in range(out_maps)]
        self.bias = nn.Parameter(torch.empty(out_maps))
        # Where each group's kernels sit in one dense (out_maps, in_maps, k, k) kernel.
        rows = [o for (outs, _), k in zip(self.groups, self.fan_ins) for o in outs for _i in range(k)]
        cols = [i for _, gathered in self.groups for i in gathered]
        self.register_buffer("dense_index", torch.tensor([rows, cols]), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        """The connection table as one kernel, zero where maps are not connected."""
        k = self.kernel_size
        weight = self.bias.new_zeros(self.out_maps, self.in_maps, k, k)
        parts = [getattr(self, f"weight{f}").reshape(-1, k, k) for f in self.fan_ins]
        return weight.index_put((self.dense_index[0], self.dense_index[1]), torch.cat(parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # Training: one dense convolution with the zero-masked kernel gives the same outputs
            # and gradients, ~10x faster on CPU than gathering maps for grouped convolutions.
            return F.conv2d(x, self.dense_weight(), self.bias)  # N x out_maps x H-k+1 x W-k+1
        # Evaluation: only the connected kernels are computed, so MAC counts stay the paper's.
        parts = []
        for k, (outs, gathered) in zip(self.fan_ins, self.groups):
            weight = getattr(self, f"weight{k}")
            parts.append(F.conv2d(x[:, gathered], weight, groups=len(outs)))
        out = torch.cat(parts, dim=1)
        if self.unpermute is not None:
            out = out[:, self.unpermute]
        return out + self.bias.view(1, -1, 1, 1)  # N x out_maps x H-k+1 x W-k+1

    def extra_repr(self) -> str:
        return f"{self.in_maps}, {self.out_maps}, kernel_size={self.kernel_size}, fan_ins={self.fan_ins}"


class EuclideanRBF(nn.Module):
    """Output layer y_i = sum_j (x_j - w_ij)^2 with a fixed code ``w`` (a buffer).

    Returns the *negated* energies so that larger means more likely (see the module
    docstring)."""

    def __init__(self, code: torch.Tensor):
        super().__init__()
        self.register_buffer("code", code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.code.unsqueeze(0)  # N x classes x 84
        return -diff.square().sum(dim=2)  # N x classes


class LeNet5(CnnModel):
    """LeNet-5 and its modern re-reading, chosen by arguments.

    Args:
        paper_style: True for the paper (scaled tanh, trainable subsampling, partial
            C3, RBF output); False for ReLU, max pooling, full C3 and a linear output.
    """

    classifier_name = "output"

    def __init__(self, num_classes: int = 10, in_chans: int = 1, paper_style: bool = True, drop_rate: float = 0.0):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.num_features = 84
        self.paper_style = paper_style
        act = Squash if paper_style else nn.ReLU
        self.c1 = nn.Conv2d(in_chans, 6, 5)
        self.act1 = act()
        self.s2 = Subsampling(6) if paper_style else nn.MaxPool2d(2)
        self.act2 = act() if paper_style else nn.Identity()
        self.c3 = PartialConv2d(C3_TABLE, 5) if paper_style else nn.Conv2d(6, 16, 5)
        self.act3 = act()
        self.s4 = Subsampling(16) if paper_style else nn.MaxPool2d(2)
        self.act4 = act() if paper_style else nn.Identity()
        self.c5 = nn.Conv2d(16, 120, 5)
        self.act5 = act()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.f6 = nn.Linear(120, 84)
        self.act6 = act()
        if drop_rate > 0:  # dropout before the output layer (not in the paper; off by default)
            self.head_drop = nn.Dropout(drop_rate)
        self.output = self.new_classifier(num_classes)
        if paper_style:
            self._init_paper()

    def new_classifier(self, num_classes: int) -> nn.Module:
        like = dict(device=self.f6.weight.device, dtype=self.f6.weight.dtype)  # where the model lives
        if self.paper_style:
            return EuclideanRBF(rbf_code(num_classes).to(**like))
        return nn.Linear(self.num_features, num_classes, **like)

    def _init_paper(self) -> None:
        # Appendix C: weights uniform in (-2.4/F, 2.4/F), F = fan-in of the unit
        # (the number of inputs of the unit the weight belongs to).
        fan_in = {"c1": self.in_chans * 25, "s2": 4, "s4": 4, "c5": 16 * 25, "f6": 120}
        c3_fans = torch.tensor([25.0 * sum(row[o] == "X" for row in C3_TABLE) for o in range(len(C3_TABLE[0]))])
        with torch.no_grad():
            for name, param in self.named_parameters():
                layer, leaf = name.split(".")
                if layer != "c3":
                    param.uniform_(-2.4 / fan_in[layer], 2.4 / fan_in[layer])
                elif leaf == "bias":
                    bound = (2.4 / c3_fans).to(param.device)
                    param.copy_((torch.rand_like(param) * 2 - 1) * bound)
                else:  # weight<k>: maps that read k S2 maps
                    fan = int(leaf[len("weight"):]) * 25
                    param.uniform_(-2.4 / fan, 2.4 / fan)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.c1(x))  # N x 6 x 28 x 28
        x = self.act2(self.s2(x))  # N x 6 x 14 x 14
        x = self.act3(self.c3(x))  # N x 16 x 10 x 10
        x = self.act4(self.s4(x))  # N x 16 x 5 x 5
        return self.act5(self.c5(x))  # N x 120 x 1 x 1

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)  # N x 120
        x = self.act6(self.f6(x))  # N x 84
        if pre_logits or not self.num_classes:
            return x
        drop = self._modules.get("head_drop")
        return self.output(drop(x) if drop is not None else x)  # N x num_classes


@register_model(
    family="lenet",
    paper=PAPER,
    input_size=(1, 32, 32),
    min_input_size=32,
    dataset="mnist",
    published=Published(
        params=60_000, params_exact=True, error=0.95, dataset="MNIST",
        source="LeCun et al. 1998, sec. II.B (60,000 trainable parameters) and sec. III.C "
        "(0.95% test error without distortions, 0.8% with)",
    ),
)
def lenet5(*, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> LeNet5:
    """LeNet-5 as published: scaled tanh, trainable subsampling, partial C3, fixed RBF output."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, paper_style=True, drop_rate=drop_rate)


@register_model(
    family="lenet",
    paper=PAPER,
    input_size=(1, 32, 32),
    min_input_size=32,
    dataset="mnist",
    published=Published(source="no published figures: a modern variant of LeCun et al. 1998"),
)
def lenet5_modern(*, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> LeNet5:
    """LeNet-5's layer sizes with ReLU, max pooling, a full C3 and a linear output."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, paper_style=False, drop_rate=drop_rate)
