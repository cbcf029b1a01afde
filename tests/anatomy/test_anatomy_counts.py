"""Analyses checked against independent counts: hand formulas, the lecture's VGG16 table,
the reference manifests, PyTorch itself."""
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.anatomy.lecture import vgg16_stack
from cnnlab.registry import is_model
from reference import load_manifest


def conv_out(size, k, s=1, p=0):
    return (size + 2 * p - k) // s + 1


# ---------------------------------------------------------------------------
# LeNet-5 and AlexNet by hand
# ---------------------------------------------------------------------------

def test_lenet5_style_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )
    a = cnnlab.analyze(model, (1, 32, 32))
    c1 = 28 * 28 * 6 * (5 * 5 * 1)
    c3 = 10 * 10 * 16 * (5 * 5 * 6)
    c5 = 1 * 1 * 120 * (5 * 5 * 16)
    f6 = 120 * 84
    out = 84 * 10
    assert a.totals["macs"] == c1 + c3 + c5 + f6 + out == 416_520
    assert a.totals["flops"] == 2 * 416_520
    assert a["0"]["macs"] == c1 and a["3"]["macs"] == c3 and a["9"]["macs"] == f6
    # parameters: weights + biases, by hand
    assert a.totals["params"] == (150 + 6) + (2400 + 16) + (48000 + 120) + (10080 + 84) + (840 + 10)
    # the pooling and tanh ops are listed separately, not in the MACs
    assert a.totals["ops"]["act"] == 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84
    assert a.totals["ops"]["pool"] == 6 * 28 * 28 + 16 * 10 * 10  # every input value read once by a 2x2/2 pool
    assert a.totals["receptive_field"] == 32  # C5 sees the whole 32x32 input: 5 + 1*1 + 4*2 + 1*2 + 4*4


def _alexnet_torchvision():
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(inplace=True),
        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000),
    )


def test_alexnet_single_tower_macs_by_hand():
    with torch.device("meta"):
        model = _alexnet_torchvision()
    a = cnnlab.analyze(model, 224)
    s1 = conv_out(224, 11, 4, 2)  # 55
    p1 = conv_out(s1, 3, 2)  # 27
    p2 = conv_out(p1, 3, 2)  # 13
    hand = (s1 * s1 * 64 * 3 * 121 + p1 * p1 * 192 * 64 * 25 + p2 * p2 * 384 * 192 * 9
            + p2 * p2 * 256 * 384 * 9 + p2 * p2 * 256 * 256 * 9 + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert a.totals["macs"] == hand
    assert a.totals["params"] == 61_100_840  # PAPERS.md: torchvision's AlexNet
    assert hand == load_manifest("alexnet")["macs"]  # and the reference manifest agrees with the hand count


# The paper's two-tower AlexNet at 227: conv2, conv4 and conv5 see half the channels (groups=2).
ALEXNET_PAPER_MACS = (55 * 55 * 96 * (11 * 11 * 3) + 27 * 27 * 256 * (48 * 5 * 5) + 13 * 13 * 384 * (256 * 3 * 3)
                      + 13 * 13 * 384 * (192 * 3 * 3) + 13 * 13 * 256 * (192 * 3 * 3)
                      + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)


@pytest.mark.skipif(not is_model("alexnet_original"), reason="alexnet_original not registered")
def test_registry_alexnet_original_by_hand():
    a = cnnlab.analyze("alexnet_original", training_estimate=False)
    assert a.input_shape == [1, 3, 227, 227]
    assert a.totals["macs"] == ALEXNET_PAPER_MACS
    assert a.totals["params"] == 60_965_224
    assert a.totals["receptive_field"] == 195


@pytest.mark.skipif(not is_model("lenet5"), reason="lenet5 not registered")
def test_registry_lenet5_by_hand():
    a = cnnlab.analyze("lenet5", training_estimate=False)
    c1 = 28 * 28 * 6 * 25
    c3_inputs = 6 * 3 + 6 * 4 + 3 * 4 + 1 * 6  # the paper's connection table: 60 S2 maps feed C3 in all
    c3 = 10 * 10 * 25 * c3_inputs
    c5 = 120 * 25 * 16
    f6 = 120 * 84
    assert (c1, c3) == (117_600, 150_000)
    assert a.totals["ops"]["conv"] == c1 + c3 + c5
    assert a.totals["ops"]["linear"] == f6  # the RBF output layer is a distance, not a product
    assert a.totals["params"] == 60_000


def test_alexnet_paper_two_tower_macs_rf_and_conv1():
    with torch.device("meta"):
        model = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Flatten(), nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000),
        )
    a = cnnlab.analyze(model, 227)
    assert a.totals["macs"] == ALEXNET_PAPER_MACS
    assert a.totals["params"] == 60_965_224  # PAPERS.md
    conv1 = a["0"]
    assert conv1["output_shape"] == [1, 96, 55, 55]  # the lecture's [55x55x96]
    assert conv1["params"] - 96 == 11 * 11 * 3 * 96 == 34_848  # the lecture's ~35K
    assert a["3"]["output_shape"] == [1, 96, 27, 27] and a["3"]["params"] == 0  # POOL1
    # receptive fields: conv1 11, pool1 19, conv2 51, pool2 67, conv3-5 99/131/163, pool5 195 (jump 32)
    rfs = [a[str(i)]["receptive_field"] for i in (0, 3, 4, 7, 8, 10, 12, 14)]
    assert rfs == [11, 19, 51, 67, 99, 131, 163, 195]
    assert a["14"]["rf_jump"] == 32
    # LRN runs as several aten ops: all of them known (none unknown), counted as elementwise/pool
    assert a.totals["coverage"]["unknown"] == {}


# ---------------------------------------------------------------------------
# The lecture's VGG16 table, layer by layer
# ---------------------------------------------------------------------------

# (layer, [H, W, C], memory = values in the output, params without biases), as the lecture writes them
LECTURE_VGG16 = [
    ("CONV3-64", [224, 224, 64], 224 * 224 * 64, (3 * 3 * 3) * 64),
    ("CONV3-64", [224, 224, 64], 224 * 224 * 64, (3 * 3 * 64) * 64),
    ("POOL2", [112, 112, 64], 112 * 112 * 64, 0),
    ("CONV3-128", [112, 112, 128], 112 * 112 * 128, (3 * 3 * 64) * 128),
    ("CONV3-128", [112, 112, 128], 112 * 112 * 128, (3 * 3 * 128) * 128),
    ("POOL2", [56, 56, 128], 56 * 56 * 128, 0),
    ("CONV3-256", [56, 56, 256], 56 * 56 * 256, (3 * 3 * 128) * 256),
    ("CONV3-256", [56, 56, 256], 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("CONV3-256", [56, 56, 256], 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("POOL2", [28, 28, 256], 28 * 28 * 256, 0),
    ("CONV3-512", [28, 28, 512], 28 * 28 * 512, (3 * 3 * 256) * 512),
    ("CONV3-512", [28, 28, 512], 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("CONV3-512", [28, 28, 512], 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("POOL2", [14, 14, 512], 14 * 14 * 512, 0),
    ("CONV3-512", [14, 14, 512], 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("CONV3-512", [14, 14, 512], 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("CONV3-512", [14, 14, 512], 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("POOL2", [7, 7, 512], 7 * 7 * 512, 0),
    ("FC", [1, 1, 4096], 4096, 7 * 7 * 512 * 4096),
    ("FC", [1, 1, 4096], 4096, 4096 * 4096),
    ("FC", [1, 1, 1000], 1000, 4096 * 1000),
]
LECTURE_VGG16_INPUT = 224 * 224 * 3


def _vgg16():
    with torch.device("meta"):
        return cnnlab.create_model("vgg16") if is_model("vgg16") else vgg16_stack()


def test_vgg16_lecture_table_layer_by_layer():
    model = _vgg16()
    a = cnnlab.analyze(model, 224, batch_size=64)
    modules = dict(model.named_modules())
    rows = [r for r in a.leaves() if r["type"] in ("Conv2d", "MaxPool2d", "Linear")]
    assert len(rows) == len(LECTURE_VGG16)
    for r, (label, hwc, memory, params) in zip(rows, LECTURE_VGG16):
        assert r["type"] == {"C": "Conv2d", "P": "MaxPool2d", "F": "Linear"}[label[0]], r["name"]
        n, *chw = r["output_shape"]
        assert n == 64
        assert (chw if len(chw) == 3 else [chw[0], 1, 1]) == [hwc[2], hwc[0], hwc[1]], r["name"]
        assert r["activations"] == memory, r["name"]
        assert r["memory"] == memory, r["name"]  # a conv/pool/FC writes its whole output
        weights = modules[r["name"]].weight.numel() if params else 0
        assert weights == params, r["name"]
        assert r["params"] == params + (hwc[2] if params else 0)  # + biases
    total = LECTURE_VGG16_INPUT + sum(m for _, _, m, _ in LECTURE_VGG16)
    assert total == 15_237_608  # PAPERS.md; the lecture's "24M" total is a miscount
    assert LECTURE_VGG16_INPUT + sum(r["activations"] for r in rows) == total
    assert a.totals["params"] == 138_357_544
    assert a.totals["macs"] == 15_470_264_320
    assert a.totals["input_values"] == LECTURE_VGG16_INPUT
    # in-place ReLUs write nothing; the forward total is the table plus layers it leaves out
    extra = sum(r["memory"] for r in a.leaves() if r["type"] not in ("Conv2d", "MaxPool2d", "Linear"))
    assert a.totals["forward_values_with_input"] == total + extra
    # receptive fields: conv5_3 sees 196 pixels, pool5 212 (jump 32)
    convs = [r for r in rows if r["type"] == "Conv2d"]
    assert [c["receptive_field"] for c in convs[:3]] == [3, 5, 10]
    assert convs[-1]["receptive_field"] == 196
    assert rows[17]["receptive_field"] == 212 and rows[17]["rf_jump"] == 32
    # the lecture's story: most memory in early convs, most params in late FCs
    b = a.breakdown()
    assert b["memory_first_quarter_pct"] > 50 and b["params_last_quarter_pct"] > 85
    assert b["params_by_type_pct"]["Linear"] > 85
    table = a.table()
    assert "Memory is mostly in early layers" in table and "Params are mostly in late layers" in table


# ---------------------------------------------------------------------------
# 1x1 conv == per-pixel FC
# ---------------------------------------------------------------------------

def test_1x1_conv_is_a_per_pixel_fc():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 1)
    x = torch.randn(3, 16, 7, 5)
    y = conv(x)
    w, b = conv.weight[:, :, 0, 0], conv.bias
    for i in range(7):
        for j in range(5):
            fc = x[:, :, i, j] @ w.t() + b  # one FC layer at pixel (i, j)
            assert torch.allclose(y[:, :, i, j], fc, atol=1e-5)
    a_conv = cnnlab.analyze(conv, (16, 7, 5))
    a_fc = cnnlab.analyze(nn.Linear(16, 8), (1, 1, 16))
    assert a_conv.totals["macs"] == 7 * 5 * a_fc.totals["macs"] == 7 * 5 * 16 * 8
    from cnnlab.anatomy.lecture import run_example

    data, text = run_example("1x1-conv")
    assert data["equal"] and data["max_abs_difference"] < 1e-4
    assert data["conv_macs"] == data["size"] ** 2 * data["fc_macs_per_pixel"]


# ---------------------------------------------------------------------------
# Functional ops, shared modules, unknown ops, parents = sum of children
# ---------------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = F.relu(self.conv(x))
        return y + x  # functional add in a container


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.block(self.block(self.stem(x)))  # the block is shared: called twice
        x = torch.cat([x, x * 2], dim=1)
        x = x.mean((2, 3))[:, :8]
        x = self.fc(self.fc(x))  # a shared linear
        return torch.matmul(x, x.t())  # functional matmul, N x N


def test_functional_ops_and_shared_modules():
    a = cnnlab.analyze(Net(), (3, 10, 10), batch_size=2)
    hw = 10 * 10
    conv_stem = hw * 8 * 27
    conv_block = hw * 8 * 72
    fc = 8 * 8
    matmul = 2 * 8 * 2 // 2  # (2x8) @ (8x2) over the batch of 2, per image
    assert a.totals["ops"]["conv"] == conv_stem + 2 * conv_block
    assert a.totals["ops"]["linear"] == 2 * fc + matmul
    assert a.totals["macs"] == conv_stem + 2 * conv_block + 2 * fc + matmul
    # a shared module: two rows, its parameters counted once
    assert a["block"]["params"] == 8 * 72 + 8 and a["block#2"]["params"] == 0
    assert a["block#2"].get("shared_with") == "block" and a["fc#2"].get("shared_with") == "fc"
    assert a["block.conv"]["macs"] == a["block#2.conv"]["macs"] == conv_block
    assert a.totals["params"] == sum(p.numel() for p in Net().parameters())
    assert a.totals["params_not_in_forward"] == 0
    # functional ops appear as rows: relu and add inside the block, cat / mul / mean / mm at the top
    names = [r["name"] for r in a.layers]
    for name in ("block.relu", "block.add", "block#2.add", "cat", "mul", "mean", "mm"):
        assert name in names, names
    assert a["block.add"]["ops"] == {"eltwise": hw * 8}
    assert a.totals["ops"]["eltwise"] == 2 * hw * 8 + hw * 8  # two residual adds and x * 2
    assert a["cat"]["output_shape"] == [2, 16, 10, 10] and a["cat"]["memory"] == 16 * hw
    # every container's totals are the sums of its children
    for r in a.layers:
        children = [c for c in a.layers if c["parent"] == r["name"]]
        if children:
            assert r["macs"] == sum(c["macs"] for c in children)
            assert r["params"] == sum(c["params"] for c in children)
            assert r["memory"] == sum(c["memory"] for c in children)
    top = [r for r in a.layers if r["depth"] == 1]
    assert sum(r["macs"] for r in top) == a.totals["macs"]
    assert a.totals["coverage"]["unknown"] == {}


class _MixedOps(nn.Module):
    """Grouped / strided / dilated / transposed convs, a Linear, a batched and a plain matmul."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)
        self.dilated = nn.Conv2d(12, 6, (3, 5), padding=(2, 1), dilation=(2, 1), bias=False)
        self.up = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)
        self.fc = nn.Linear(4 * 16, 10)
        self.proj = nn.Parameter(torch.randn(16, 7))

    def forward(self, x):
        x = self.up(self.dilated(self.grouped(x)))
        t = x.flatten(2).transpose(1, 2)
        att = t @ t.transpose(1, 2)  # bmm
        y = F.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc(y) + att.mean((1, 2))[:, None] + y[:, :16] @ self.proj.sum(1, keepdim=True)  # addmm, mm


@pytest.mark.parametrize("batch, hw", [(1, (16, 16)), (3, (18, 14))])
def test_macs_match_pytorchs_flop_counter(batch, hw):
    from torch.utils.flop_counter import FlopCounterMode

    model = _MixedOps()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(batch, 8, *hw))
    flops = counter.get_flop_counts()
    conv, mm = torch.ops.aten.convolution, (torch.ops.aten.bmm, torch.ops.aten.addmm, torch.ops.aten.mm)
    a = cnnlab.analyze(model, (8, *hw), batch_size=batch, training_estimate=False)
    t = a.totals
    assert t["macs_batch"] == counter.get_total_flops() // 2
    assert t["ops"]["conv"] * batch == flops["Global"][conv] // 2
    assert t["ops"]["linear"] * batch == sum(flops["Global"].get(op, 0) for op in mm) // 2
    for name in ("grouped", "dilated", "up"):
        assert a[name]["macs"] * batch == flops[f"_MixedOps.{name}"][conv] // 2, name
    assert a["fc"]["macs"] * batch == flops["_MixedOps.fc"][torch.ops.aten.addmm] // 2


def test_unknown_ops_are_reported_not_zeroed():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.special.bessel_j0(self.conv(x)).lgamma_()  # an in-place op computes too

    a = cnnlab.analyze(Odd(), (3, 8, 8))
    assert a.totals["coverage"]["unknown"] == {"aten.special_bessel_j0.default": 1, "aten.lgamma_.default": 1}
    assert "bessel_j0" in a.table() and "NOT COUNTED" in a.table()
    assert any(r["type"] == "special_bessel_j0" for r in a.layers)


def test_optional_op_kinds_in_the_macs():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    base = cnnlab.analyze(model, (3, 8, 8))
    full = cnnlab.analyze(model, (3, 8, 8), count=("conv", "linear", "norm", "act", "pool"))
    conv = 8 * 8 * 4 * 27
    assert base.totals["macs"] == conv
    assert full.totals["ops"] == base.totals["ops"]
    assert full.totals["ops"]["norm"] == 8 * 8 * 4 and full.totals["ops"]["act"] == 8 * 8 * 4
    assert full.totals["ops"]["pool"] == 4 * 4 * 4 * 4  # each output reads a 2x2 window
    assert full.totals["macs"] == conv + 256 + 256 + 256
    with pytest.raises(ValueError, match="count must be"):
        cnnlab.analyze(model, (3, 8, 8), count=("conv", "bogus"))


# ---------------------------------------------------------------------------
# Receptive fields through branches and merges
# ---------------------------------------------------------------------------

def test_stacked_3x3_sees_7():
    stack = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)])
    a = cnnlab.analyze(stack, (4, 32, 32))
    assert [r["receptive_field"] for r in a.leaves()] == [3, 5, 7]
    assert all(r["rf_jump"] == 1 for r in a.leaves())
    seven = cnnlab.analyze(nn.Conv2d(4, 4, 7, padding=3), (4, 32, 32))
    assert seven.totals["receptive_field"] == 7
    # weights: 27 C^2 vs 49 C^2
    assert sum(p.numel() for n, p in stack.named_parameters() if "weight" in n) == 27 * 16
    assert nn.Conv2d(4, 4, 7).weight.numel() == 49 * 16


def test_receptive_field_residual_and_concat():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.b(self.a(x)) + x  # RF: union of 5 (the path) and 1 (the shortcut)

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.one = nn.Conv2d(4, 2, 1)
            self.five = nn.Conv2d(4, 2, 5, padding=2)

        def forward(self, x):
            return torch.cat([self.one(x), self.five(x)], dim=1)

    a = cnnlab.analyze(nn.Sequential(Residual(), Concat()), (4, 16, 16))
    assert a["0"]["receptive_field"] == 5
    assert a["1.one"]["receptive_field"] == 5
    assert a["1.five"]["receptive_field"] == 9
    assert a["1"]["receptive_field"] == 9  # the concat sees what its widest branch sees
    # strided branch next to a shortcut: the union keeps the larger field and jump
    down = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.MaxPool2d(3, 2, 1))
    b = cnnlab.analyze(down, (4, 16, 16))
    assert b["0"]["receptive_field"] == 3 and b["0"]["rf_jump"] == 2
    assert b["1"]["receptive_field"] == 7 and b["1"]["rf_jump"] == 4


# ---------------------------------------------------------------------------
# No real forward pass
# ---------------------------------------------------------------------------

def _peak_rss_kb() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))


def test_live_peak_follows_tensor_lifetimes():
    # conv -> relu (not in place) -> conv: at most two 8-channel maps are alive at once
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True))
    a = cnnlab.analyze(model, (3, 16, 16), batch_size=2)
    one_map = 2 * 8 * 16 * 16 * 4
    assert a.totals["forward_peak_bytes_batch"] == 2 * one_map
    assert a.totals["forward_bytes_batch"] == 3 * one_map + 2 * 3 * 16 * 16 * 4  # every output kept + the input
    # autograd keeps conv1's input, the ReLU's output (conv2's input) and the in-place ReLU's output;
    # conv1's output is not needed by backward (ReLU's backward uses its result) and is freed
    assert a.totals["training"]["saved_activations_bytes"] == 2 * one_map + 2 * 3 * 16 * 16 * 4
    assert a.totals["training"]["forward_peak_bytes"] == 2 * one_map


def _two_convs():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True))


@pytest.mark.parametrize("optimizer, states", [("sgd", 0), ("momentum", 1), ("adam", 2), ("AdamW", 2)])
def test_frozen_parameters_get_no_grads_or_optimizer_state(optimizer, states):
    model = _two_convs()
    model[0].requires_grad_(False)  # a frozen stem, as in fine-tuning
    conv1, conv2 = 8 * 3 * 9 + 8, 8 * 8 * 9 + 8  # weights + biases, by hand
    a = cnnlab.analyze(model, (3, 16, 16), batch_size=2, optimizer=optimizer)
    t, tr = a.totals, a.totals["training"]
    assert t["params"] == conv1 + conv2 and t["trainable_params"] == conv2
    assert t["params_bytes"] == tr["params_bytes"] == 4 * (conv1 + conv2)  # frozen weights still take memory
    assert tr["grads_bytes"] == 4 * conv2
    assert tr["optimizer_state_bytes"] == states * 4 * conv2
    assert tr["optimizer"] == optimizer.lower()
    # nothing before conv2 needs a gradient, so conv1 keeps no input and the ReLU no output:
    # conv2's input and the in-place ReLU's output are all autograd keeps
    one_map = 2 * 8 * 16 * 16 * 4
    assert tr["saved_activations_bytes"] == 2 * one_map
    assert tr["total_bytes"] == 2 * one_map + 4 * (conv1 + conv2) + (1 + states) * 4 * conv2
    assert model[0].weight.requires_grad is False and model[2].weight.requires_grad  # the user's flags kept


def test_frozen_parameters_in_half_precision_and_fully_frozen():
    model = _two_convs().requires_grad_(False)
    a = cnnlab.analyze(model, (3, 16, 16), batch_size=2, dtype=torch.float16, optimizer="adam")
    tr = a.totals["training"]
    assert a.totals["trainable_params"] == 0 and tr["params_bytes"] == 2 * (224 + 584)
    assert tr["grads_bytes"] == 0 and tr["optimizer_state_bytes"] == 0
    assert tr["saved_activations_bytes"] == 0  # nothing to differentiate: autograd keeps nothing


class _AuxInTraining(nn.Module):
    """A conv, plus an auxiliary linear head that only runs in training mode."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.aux = nn.Linear(4, 5)

    def forward(self, x):
        y = self.conv(x)
        if self.training:
            return y, self.aux(y.mean((2, 3)))
        return y


def test_train_mode_runs_what_training_runs():
    model = _AuxInTraining().eval()
    conv_macs, aux_macs, aux_params = 6 * 6 * 4 * 27, 4 * 5, 4 * 5 + 5
    ev = cnnlab.analyze(model, (3, 8, 8), batch_size=2)
    tr = cnnlab.analyze(model, (3, 8, 8), batch_size=2, mode="train")
    assert ev.totals["macs"] == conv_macs and tr.totals["macs"] == conv_macs + aux_macs
    assert ev.totals["params_not_in_forward"] == aux_params and tr.totals["params_not_in_forward"] == 0
    assert ev.conventions["mode"] == "eval" and tr.conventions["mode"] == "train"
    # the training estimate always traces a train-mode pass, whichever mode the table shows;
    # autograd keeps the conv's input and the aux Linear's input (the mean keeps only a shape)
    saved = 2 * 3 * 8 * 8 * 4 + 2 * 4 * 4
    assert ev.totals["training"]["saved_activations_bytes"] == tr.totals["training"]["saved_activations_bytes"] == saved
    assert model.training is False  # the caller's mode is kept, in both cases
    none = cnnlab.analyze(model, (3, 8, 8), batch_size=2, training_estimate=False)["conv"]
    assert none["macs"] == conv_macs
    t = cnnlab.analyze(model, (3, 8, 8), training_estimate=False).totals["training"]
    assert t["saved_activations_bytes"] is None and t["total_bytes"] is None and "note" not in t
    assert t["params_bytes"] == 4 * (4 * 27 + 4 + aux_params)  # params, grads and state are known without a trace


def test_a_failing_train_mode_trace_leaves_the_eval_figures():
    model = nn.Sequential(nn.Conv2d(3, 4, 2), nn.Flatten(), nn.BatchNorm1d(4))  # training needs > 1 value per channel
    a = cnnlab.analyze(model, (3, 2, 2), batch_size=1)
    assert a.totals["macs"] == 4 * 12
    tr = a.totals["training"]
    assert tr["saved_activations_bytes"] is None and tr["total_bytes"] is None
    assert tr["note"].startswith("train-mode trace failed: ") and "channel" in tr["note"]
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # asked for: the error itself
        cnnlab.analyze(model, (3, 2, 2), batch_size=1, mode="train")


@pytest.mark.parametrize("kwargs, message", [
    (dict(count=()), "count must be a non-empty selection"), (dict(count=("conv", "flops")), "got \\['conv', 'flops'\\]"),
    (dict(mode="training"), "mode must be 'eval' or 'train'"), (dict(optimizer="lion"), "optimizer must be one of"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"), (dict(batch_size=True), "got True"),
    (dict(batch_size=2.0), "got 2.0"), (dict(dtype="float32"), "dtype must be a floating-point torch.dtype"),
])
def test_analyze_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cnnlab.analyze(nn.Conv2d(3, 3, 1), 4, **kwargs)


def _conv_bn_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 7 * 7, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_real_model_and_its_meta_twin_give_the_same_analysis(dtype):
    # two paths: a model on the meta device is traced as it is; a model with real (float32)
    # weights is traced through stand-ins of its parameters and buffers in the analysed dtype
    real = _conv_bn_net()
    with torch.device("meta"):
        twin = _conv_bn_net()
    twin.to(dtype)
    for optimizer in ("sgd", "adam"):
        a = cnnlab.analyze(real, (3, 16, 16), batch_size=4, dtype=dtype, optimizer=optimizer)
        b = cnnlab.analyze(twin, (3, 16, 16), batch_size=4, dtype=dtype, optimizer=optimizer)
        assert a.totals == b.totals and a.layers == b.layers
    tr = a.totals["training"]
    assert "note" not in tr and tr["saved_activations_bytes"] > 0
    itemsize = 4 if dtype == torch.float32 else 2
    # autograd keeps activations, never the parameters: at least the first conv's input and
    # the Linear's input, and less than every output plus the input
    assert itemsize * 4 * (3 * 16 * 16 + 8 * 7 * 7) <= tr["saved_activations_bytes"] < \
        a.totals["forward_bytes_batch"] + a.totals["params_bytes"]
    assert tr["params_bytes"] == itemsize * a.totals["params"] and tr["optimizer_state_bytes"] == 2 * tr["params_bytes"]
    assert all(t.dtype == torch.float32 for t in real.state_dict().values() if t.is_floating_point())


def test_no_activation_is_allocated():
    model = vgg16_stack()  # real weights: 553 MB that must be neither copied nor used
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS
    before = _peak_rss_kb()
    a = cnnlab.analyze(model, 224, batch_size=64)
    grown_mb = (_peak_rss_kb() - before) / 1024
    activation_mb = a.totals["forward_bytes_batch"] / 2**20
    assert activation_mb > 3500  # a real pass would need ~3.9 GB
    assert grown_mb < 150, f"peak RSS grew by {grown_mb:.0f} MB during the analysis"
    assert next(model.parameters()).device.type == "cpu"  # the user's model is untouched
    assert model.training  # and its mode is restored


def test_measured_peak_matches_a_known_pass():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1))
    a = cnnlab.analyze(model, (3, 32, 32), batch_size=4, measure=True)
    out_bytes = 4 * 16 * 32 * 32 * 4
    m = a.totals["measured"]
    assert out_bytes <= m["forward_peak_bytes"] <= 2 * out_bytes
    assert a.totals["forward_peak_bytes_batch"] == out_bytes  # the meta trace's live-tensor peak
    assert m["train_step_peak_bytes"] >= out_bytes
    assert "Measured peak" in a.table()


def test_measured_peaks_by_hand():
    from cnnlab.anatomy.measure import measure_peak

    # forward (no grad): the Linear's output is still referenced while the ReLU writes its own
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
    out = 16 * 32 * 4
    m = measure_peak(model, [16, 64], torch.float32)
    assert m["device"] == "cpu" and m["method"] == "torch.profiler memory events"
    assert m["forward_peak_bytes"] == 2 * out
    # forward + backward: the activations plus a gradient for every parameter (a few bytes more
    # for the scalar loss)
    grads = (64 * 32 + 32) * 4
    assert out + grads <= m["train_step_peak_bytes"] <= 2 * out + grads + 64


def test_measured_peaks_other_dtypes_no_weights_and_aux_heads():
    from cnnlab.anatomy.measure import measure_peak
    from cnnlab.models.base import AuxOutput

    # the input is made in the model's dtype: 8 bytes a value in float64
    m = measure_peak(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1)).double(), [2, 3, 8, 8], torch.float64)
    assert m["forward_peak_bytes"] == 2 * 16 * 8 * 8 * 8
    # a model without parameters runs on the CPU
    assert measure_peak(nn.Sequential(nn.Flatten()), [2, 3, 4, 4], torch.float32)["device"] == "cpu"

    class WithAux(nn.Module):  # AuxOutput in training: the aux head's loss is back-propagated too
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 2)
            self.aux = nn.Linear(8, 1000)

        def forward(self, x):
            return AuxOutput(self.fc(x), (self.aux(x),)) if self.training else self.fc(x)

    m = measure_peak(WithAux(), [4, 8], torch.float32)
    aux_grads = (8 * 1000 + 1000) * 4
    assert m["train_step_peak_bytes"] >= aux_grads + (8 * 2 + 2) * 4 + 4 * 1000 * 4

    with pytest.raises(ValueError, match="measure=True needs a model with real weights"):
        cnnlab.analyze(nn.Conv2d(3, 3, 1, device="meta"), 4, measure=True)


def test_measure_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    model.train()
    model[1].eval()  # a frozen-statistics BN inside a training model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = cnnlab.analyze(model, (3, 8, 8), batch_size=2, measure=True)
    assert a.totals["measured"]["train_step_peak_bytes"] > 0
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
    assert all(p.grad is None for p in model.parameters())  # the measured step's gradients are dropped
    # nor are batch norm's running statistics updated from the random batch of the measured step
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(not is_model("resnet50"), reason="resnet50 not registered")
def test_resnet50_receptive_field_by_hand():
    # torchvision's layout: conv1 7x7/2, maxpool 3x3/2, then every bottleneck adds one 3x3 conv;
    # the first block of stages 2-4 strides in its 3x3.
    size, jump = 7, 2
    size, jump = size + 2 * jump, jump * 2  # maxpool
    stages = []
    for blocks, stride in ((3, 1), (4, 2), (6, 2), (3, 2)):
        for b in range(blocks):
            size += 2 * jump
            if b == 0:
                jump *= stride
        stages.append((size, jump))
    a = cnnlab.analyze("resnet50", training_estimate=False)
    assert [(a[f"layer{i}"]["receptive_field"], a[f"layer{i}"]["rf_jump"]) for i in (1, 2, 3, 4)] == stages
    assert stages[-1] == (427, 32)
