"""SqueezeNet against Table 1 and section 6 (bypass) of Iandola et al. 2016."""
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.models.squeezenet import Fire, SqueezeNet
from reference import build_on_meta, conv_linear_macs

# Table 1: output of each layer of SqueezeNet v1.0 (C, H, W). Its sizes are those of a
# 227x227 input, the crop of the authors' Caffe model: (227 - 7) / 2 + 1 = 111.
TABLE1 = [
    ("conv1", (96, 111, 111)), ("maxpool1", (96, 55, 55)),
    ("fire2", (128, 55, 55)), ("fire3", (128, 55, 55)), ("fire4", (256, 55, 55)), ("maxpool4", (256, 27, 27)),
    ("fire5", (256, 27, 27)), ("fire6", (384, 27, 27)), ("fire7", (384, 27, 27)), ("fire8", (512, 27, 27)),
    ("maxpool8", (512, 13, 13)), ("fire9", (512, 13, 13)),
]
# (in, out) channels of fire2 ... fire9 in v1.0.
FIRE_CHANNELS = [(96, 128), (128, 128), (128, 256), (256, 256), (256, 384), (384, 384), (384, 512), (512, 512)]


def test_v1_0_layer_outputs():
    model = build_on_meta("squeezenet1_0")
    x = torch.empty(1, 3, 227, 227, device="meta")
    shapes = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, Fire)):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [s for _, s in TABLE1]
    assert [(f.squeeze.in_channels, f.out_chs) for f in model.fires()] == FIRE_CHANNELS


def test_simple_bypass_is_identity_around_fire_3_5_7_9_and_adds_no_parameters():
    vanilla, simple = build_on_meta("squeezenet1_0"), build_on_meta("squeezenet1_0_bypass")
    kinds = [f.bypass_kind for f in simple.fires()]
    fire_numbers = [i + 2 for i, k in enumerate(kinds) if k == "identity"]
    assert fire_numbers == [3, 5, 7, 9] and kinds.count(None) == 4
    assert {k: v.shape for k, v in vanilla.state_dict().items()} == {k: v.shape for k, v in simple.state_dict().items()}
    assert sum(p.numel() for p in simple.parameters()) == sum(p.numel() for p in vanilla.parameters())


def test_complex_bypass_adds_1x1_convolutions_around_fire_2_4_6_8():
    vanilla, complex_ = build_on_meta("squeezenet1_0"), build_on_meta("squeezenet1_0_complex_bypass")
    kinds = [f.bypass_kind for f in complex_.fires()]
    assert kinds == ["conv", "identity"] * 4
    extra = sum(cin * cout + cout for cin, cout in FIRE_CHANNELS[::2])  # 1x1 conv with bias
    assert sum(p.numel() for p in complex_.parameters()) == sum(p.numel() for p in vanilla.parameters()) + extra


def test_bypass_variants_compute_different_functions_with_the_same_weights():
    torch.manual_seed(0)
    vanilla = cnnlab.create_model("squeezenet1_0").eval()
    simple = cnnlab.create_model("squeezenet1_0_bypass").eval()
    complex_ = cnnlab.create_model("squeezenet1_0_complex_bypass").eval()
    simple.load_state_dict(vanilla.state_dict())
    missing, unexpected = complex_.load_state_dict(vanilla.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == sorted(
        f"features.{i}.bypass.{leaf}" for i in (3, 5, 8, 10) for leaf in ("weight", "bias"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b, c = vanilla(x), simple(x), complex_(x)
        assert not torch.allclose(a, b) and not torch.allclose(b, c)
        # The simple bypass adds a fire's input to its output.
        fire3_in = vanilla.features[:4](x)
        torch.testing.assert_close(simple.features[4](fire3_in), vanilla.features[4](fire3_in) + fire3_in)


def test_v1_1_needs_less_computation():
    with torch.device("meta"):
        v10, v11 = SqueezeNet("1_0"), SqueezeNet("1_1")
    ratio = conv_linear_macs(v10, 224) / conv_linear_macs(v11, 224)
    assert 2.2 < ratio < 2.5  # "2.4x less computation"
    assert sum(p.numel() for p in v11.parameters()) < sum(p.numel() for p in v10.parameters())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="bypass"):
        SqueezeNet(bypass="dense")
    with pytest.raises(ValueError, match="version"):
        SqueezeNet("2_0")
    with pytest.raises(ValueError, match="identity bypass"):
        Fire(96, 16, 64, 64, bypass="identity")
