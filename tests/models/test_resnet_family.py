"""Behaviour of the residual family beyond the registry-wide checks: plain vs residual
nets, the switches (SE, ResNeXt, WRN dropout, stride placement), argument errors and
the very deep CIFAR nets."""
import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.models.resnet import ResNet
from reference import build_on_meta, conv_linear_macs


def _blocks(model):
    return model.residual_blocks()


def _zero_pad_shortcut(x, out_chs, stride):
    """Option A computed by hand: subsample, then append zero channels."""
    x = x[:, :, ::stride, ::stride]
    zeros = torch.zeros(x.shape[0], out_chs - x.shape[1], *x.shape[2:])
    return torch.cat([x, zeros], dim=1)


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_net_has_exactly_the_resnets_parameters(depth):
    res = build_on_meta(f"resnet{depth}")
    plain = build_on_meta(f"plain{depth}")
    want = {k: v.shape for k, v in res.state_dict().items()}
    assert {k: v.shape for k, v in plain.state_dict().items()} == want
    # 6n+2 weighted layers: the stem conv, 2 convs per block, the FC.
    convs = [k for k in want if k.endswith("conv1.weight") or k.endswith("conv2.weight")]
    assert len(convs) + 1 == depth


def test_plain_and_resnet_blocks_differ_only_by_the_shortcut():
    torch.manual_seed(1)
    res = cnnlab.create_model("resnet20").eval()
    plain = cnnlab.create_model("plain20").eval()
    plain.load_state_dict(res.state_dict(), strict=True)
    n_changes = 0
    for rb, pb in zip(_blocks(res), _blocks(plain)):
        in_chs = rb.conv1.in_channels
        out_chs, stride = rb.conv2.out_channels, rb.conv1.stride[0]
        x = torch.relu(torch.randn(2, in_chs, 8, 8))  # blocks see post-ReLU inputs
        z = {}
        hooks = [b.bn2.register_forward_hook(lambda m, i, o, b=b: z.__setitem__(b, o.clone())) for b in (rb, pb)]
        with torch.no_grad():
            y_res, y_plain = rb(x), pb(x)
        for h in hooks:
            h.remove()
        torch.testing.assert_close(z[rb], z[pb])  # the same residual branch F(x)
        torch.testing.assert_close(y_plain, torch.relu(z[pb]))
        torch.testing.assert_close(y_res, torch.relu(z[rb] + _zero_pad_shortcut(x, out_chs, stride)))
        n_changes += (out_chs != in_chs)
    assert n_changes == 2  # two option-A transitions (16 -> 32 -> 64)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(res(x), plain(x))


def test_option_a_and_b_shortcuts():
    a = build_on_meta("resnet56")
    assert not any("downsample" in k for k in a.state_dict())  # option A: no parameters
    b = ResNet("basic", (9, 9, 9), widths=(16, 32, 64), stem="cifar", stem_width=16, shortcut="B",
               num_classes=10)
    proj = sorted({k.rsplit(".", 2)[0] for k in b.state_dict() if "downsample" in k})
    assert proj == ["layer2.0.downsample", "layer3.0.downsample"]
    extra = sum(p.numel() for p in b.parameters()) - sum(p.numel() for p in a.parameters())
    assert extra == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 convs + their BN


def test_preact_units_have_nothing_after_the_addition():
    torch.manual_seed(0)
    model = cnnlab.create_model("preact_resnet110").eval()
    blk = _blocks(model)[3]  # an identity unit
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        branch = blk.conv2(blk.norm2(blk.conv1(F.relu(blk.norm1(x)))))
        torch.testing.assert_close(blk(x), x + branch)
    assert (blk(x) < 0).any()  # no ReLU after the sum
    keys = model.state_dict()
    assert "stem.conv.weight" in keys and "norm.weight" in keys and "head.fc.weight" in keys
    assert not any(k.startswith("stem.") and "norm" in k for k in keys)  # the first unit pre-activates


def test_se_switch_adds_the_hand_counted_parameters():
    base = build_on_meta("resnet20")
    se = build_on_meta("resnet20", se=True)
    # per block: fc1 C*(C/16) + C/16, fc2 (C/16)*C + C; 3 blocks per width 16, 32, 64
    by_hand = sum(3 * (2 * c * (c // 16) + c // 16 + c) for c in (16, 32, 64))
    assert sum(p.numel() for p in se.parameters()) - sum(p.numel() for p in base.parameters()) == by_hand
    for name in ("preact_resnet164", "wrn16_8", "resnext29_8x64d", "resnet50"):
        assert any(".se.fc1." in k for k in build_on_meta(name, se=True).state_dict())


def test_resnext29_cardinality_and_widths():
    sd = build_on_meta("resnext29_8x64d").state_dict()
    # Xie et al. Table 7: c=8, d=64 -> grouped 3x3 of 512 channels in stage 1, doubling.
    assert list(sd["layer1.0.conv2.weight"].shape) == [512, 64, 3, 3]
    assert list(sd["layer3.0.conv2.weight"].shape) == [2048, 256, 3, 3]
    assert list(sd["layer3.2.conv3.weight"].shape) == [1024, 2048, 1, 1]
    assert list(sd["conv1.weight"].shape) == [64, 3, 3, 3]


def test_wrn_dropout_sits_between_the_convs():
    torch.manual_seed(0)
    model = cnnlab.create_model("wrn16_8", dropout=0.3)
    blk = _blocks(model)[0]
    seen = {}
    blk.conv2.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    model.train()(torch.randn(2, 3, 8, 8))
    zero_frac = (seen["x"] == 0).float().mean().item()
    assert 0.3 < zero_frac < 0.95  # ReLU zeros plus ~30% dropout
    model.eval()
    ref = cnnlab.create_model("wrn16_8").eval()
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))  # no dropout at evaluation


def test_bottleneck_stride_on_3x3_vs_paper_1x1():
    tv = build_on_meta("resnet50")
    paper = build_on_meta("resnet50", stride_in_1x1=True)
    assert tv.layer2[0].conv2.stride == (2, 2) and paper.layer2[0].conv1.stride == (2, 2)
    # He et al. 2015, Table 1: ResNet-50 is 3.8 x 10^9 FLOPs (multiply-adds); v1.5 is 4.1 G.
    assert abs(conv_linear_macs(paper, 224) / 1e9 - 3.8) < 0.06
    assert abs(conv_linear_macs(tv, 224) / 1e9 - 4.09) < 0.01


@pytest.mark.parametrize("name,dataset,classes,size", [
    ("resnet20", "cifar", 10, 32), ("plain110", "cifar", 10, 32), ("wrn28_10", "cifar", 10, 32),
    ("resnext29_16x64d", "cifar", 10, 32), ("preact_resnet1001", "cifar", 10, 32),
    ("resnet50", "imagenet", 1000, 224), ("resnetv2_50", "imagenet", 1000, 224),
])
def test_dataset_defaults(name, dataset, classes, size):
    info = cnnlab.model_info(name)
    assert (info.dataset, info.num_classes, info.input_size) == (dataset, classes, (3, size, size))


@pytest.mark.parametrize("kwargs,match", [
    (dict(block="dense"), "block"),
    (dict(shortcut="C"), "shortcut"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
    (dict(dropout=-0.1), "dropout"),
    (dict(cardinality=0), "cardinality"),
    (dict(layers=(2, 2)), "layers"),
    (dict(shortcut=False, drop_path_rate=0.2), "shortcuts"),
    (dict(cardinality=32), "cardinality"),  # basic block
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(block="basic", layers=(1, 1, 1, 1))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ResNet(args.pop("block"), args.pop("layers"), **args)


def test_reset_classifier_keeps_layout():
    for name in ("resnet18", "resnetv2_50"):
        model = build_on_meta(name)
        model.reset_classifier(3)
        assert model.get_classifier().weight.shape[0] == 3 and model.num_classes == 3


@pytest.mark.parametrize("name,blocks", [("resnet1202", 600), ("preact_resnet1001", 333)])
def test_very_deep_nets_run_on_cifar_images(name, blocks):
    torch.manual_seed(0)
    model = cnnlab.create_model(name)
    assert len(model.residual_blocks()) == blocks
    # Training-mode BN: with untrained running statistics, evaluation of 600 post-activation
    # blocks overflows (each block adds the variance of its branch), as it would in any library.
    with torch.no_grad():
        out = model.train()(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
