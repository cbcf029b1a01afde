"""The table notation and the generic Inception / Inception-ResNet blocks, checked
against hand-counted parameters from the papers' figures and against the residual
formula act(x + scale * conv1x1(branches))."""
import pytest
import torch
from torch import nn

from cnnlab.models.inception import (
    IRV2_A,
    IRV2_B,
    IRV2_C,
    REDUCTION_A,
    V3_B,
    V4_A,
    V4_B,
    V4_C,
    MixedBlock,
    ResidualMixedBlock,
    parse_layer,
)


def conv_bn(kh, kw, cin, cout):
    """Parameters of a bias-free conv followed by BatchNorm (weight + bias)."""
    return kh * kw * cin * cout + 2 * cout


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ---- the notation ---------------------------------------------------------------

def test_parse_conv_and_pool():
    conv = parse_layer("3x3/2 384 V")
    assert (conv.kind, conv.kernel, conv.stride, conv.width, conv.padding) == ("conv", (3, 3), 2, 384, (0, 0))
    asym = parse_layer("1x7 224")
    assert asym.kernel == (1, 7) and asym.padding == (0, 3) and asym.stride == 1
    pool = parse_layer("avgpool 3x3 excl-pad")
    assert pool.kind == "avgpool" and pool.padding == (1, 1) and not pool.count_include_pad
    assert parse_layer("avgpool 3x3").count_include_pad  # PyTorch's default, torchvision's v3
    assert parse_layer("maxpool 3x3/2 V").out_chs(77) == 77


@pytest.mark.parametrize("bad, match", [
    ("3x3", "needs a width"),
    ("conv 64", "kernel"),
    ("3x3 64 same", "flag"),
    ("maxpool 3x3 excl-pad", "flag"),
    ("", "kernel"),
])
def test_parse_errors_name_the_layer(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_layer(bad)


def test_block_errors():
    with pytest.raises(ValueError, match="needs the width 'c7'"):
        MixedBlock(768, V3_B)  # the 17 x 17 block's width c7 was not given
    with pytest.raises(ValueError, match="naming"):
        MixedBlock(8, [("b", "1x1 4")], naming="keras")
    with pytest.raises(ValueError, match="leaves must be convolutions"):
        MixedBlock(8, [("b", "1x1 4 | [maxpool 3x3, 1x1 4]")])


# ---- naming, widths, parameters --------------------------------------------------

def test_timm_and_torchvision_naming():
    table = [("b", "avgpool 3x3 | 1x1 8 | 3x3 8"), ("t", "1x1 4 | [1x3 2, 3x1 2]")]
    timm = set(MixedBlock(6, table, naming="timm").state_dict())
    tv = set(MixedBlock(6, table, naming="torchvision").state_dict())
    assert {"b.1.conv.weight", "b.2.conv.weight", "t_0.conv.weight", "t_1a.conv.weight", "t_1b.conv.weight"} <= timm
    assert {"b_1.conv.weight", "b_2.conv.weight", "t_1.conv.weight", "t_2a.conv.weight", "t_2b.conv.weight"} <= tv


def test_inception_v4_a_b_c_parameters_match_paper_figures():
    # Fig. 4 (input 384): 1x1 96 | 1x1 64, 3x3 96 | 1x1 64, 3x3 96, 3x3 96 | avg, 1x1 96
    a = (conv_bn(1, 1, 384, 96) + conv_bn(1, 1, 384, 64) + conv_bn(3, 3, 64, 96)
         + conv_bn(1, 1, 384, 64) + conv_bn(3, 3, 64, 96) + conv_bn(3, 3, 96, 96) + conv_bn(1, 1, 384, 96))
    block = MixedBlock(384, V4_A)
    assert n_params(block) == a and block.out_chs == 384
    # Fig. 5 (input 1024): 1x1 384 | 1x1 192, 1x7 224, 7x1 256 | 1x1 192, 7x1 192, 1x7 224,
    # 7x1 224, 1x7 256 | avg, 1x1 128 -> 384 + 256 + 256 + 128 = 1024
    b = (conv_bn(1, 1, 1024, 384) + conv_bn(1, 1, 1024, 192) + conv_bn(1, 7, 192, 224) + conv_bn(7, 1, 224, 256)
         + conv_bn(1, 1, 1024, 192) + conv_bn(7, 1, 192, 192) + conv_bn(1, 7, 192, 224) + conv_bn(7, 1, 224, 224)
         + conv_bn(1, 7, 224, 256) + conv_bn(1, 1, 1024, 128))
    block = MixedBlock(1024, V4_B)
    assert n_params(block) == b and block.out_chs == 1024
    # Fig. 6 (input 1536): 1x1 256 | 1x1 384 -> [1x3 256, 3x1 256] | 1x1 384, 1x3 448,
    # 3x1 512 -> [1x3 256, 3x1 256] | avg, 1x1 256 -> 256 + 512 + 512 + 256 = 1536
    c = (conv_bn(1, 1, 1536, 256) + conv_bn(1, 1, 1536, 384) + 2 * conv_bn(1, 3, 384, 256)
         + conv_bn(1, 1, 1536, 384) + conv_bn(1, 3, 384, 448) + conv_bn(3, 1, 448, 512)
         + 2 * conv_bn(1, 3, 512, 256) + conv_bn(1, 1, 1536, 256))
    block = MixedBlock(1536, V4_C)
    assert n_params(block) == c and block.out_chs == 1536


@pytest.mark.parametrize("kind, k, l, m, n, in_chs, out_chs", [
    ("inception_v4", 192, 224, 256, 384, 384, 1024),  # paper Table 1 and Fig. 9
    ("inception_resnet_v2", 256, 256, 384, 384, 320, 1088),  # Table 1; 320 in = TF-slim's stem
])
def test_reduction_a_table_1(kind, k, l, m, n, in_chs, out_chs):
    block = MixedBlock(in_chs, REDUCTION_A, k=k, l=l, m=m, n=n)
    assert block.out_chs == in_chs + n + m == out_chs
    want = conv_bn(3, 3, in_chs, n) + conv_bn(1, 1, in_chs, k) + conv_bn(3, 3, k, l) + conv_bn(3, 3, l, m)
    assert n_params(block) == want
    y = block(torch.randn(1, in_chs, 9, 9))
    assert y.shape == (1, out_chs, 4, 4)  # 3x3 stride 2 valid: (9 - 3) // 2 + 1


@pytest.mark.parametrize("table, in_chs, branch_chs", [(IRV2_A, 320, 128), (IRV2_B, 1088, 384), (IRV2_C, 2080, 448)])
def test_residual_block_projects_back_to_input_width(table, in_chs, branch_chs):
    block = ResidualMixedBlock(in_chs, table, scale=0.1)
    assert block.branch_chs == branch_chs and block.out_chs == in_chs
    assert block.conv2d.weight.shape == (in_chs, branch_chs, 1, 1) and block.conv2d.bias is not None


# ---- residual scaling --------------------------------------------------------------

def _tiny_residual(scale, activate=True):
    torch.manual_seed(0)
    block = ResidualMixedBlock(16, [("branch0", "1x1 4"), ("branch1", "1x1 4 | 3x3 6")], scale, activate)
    return block.eval()


def test_scale_zero_reduces_to_activation_of_shortcut():
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        assert torch.equal(_tiny_residual(0.0)(x), torch.relu(x))
        assert torch.equal(_tiny_residual(0.0, activate=False)(x), x)


@pytest.mark.parametrize("scale", [0.17, 0.10, 0.20, 1.0])
def test_residual_is_scaled_before_the_addition(scale):
    block = _tiny_residual(scale)
    seen = {}

    def keep(module, inputs, output):
        seen["u"] = output.clone()

    block.conv2d.register_forward_hook(keep)
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        y = block(x)
    assert seen["u"].abs().max() > 0.1  # the branch contributes something
    torch.testing.assert_close(y, torch.relu(x + scale * seen["u"]))


def test_last_block_without_activation_keeps_negative_values():
    block = _tiny_residual(1.0, activate=False)
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        y = block(x)
    assert (y < 0).any()

