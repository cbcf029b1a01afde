"""AlexNet and ZFNet against the papers (Krizhevsky et al. 2012 sec. 3; Zeiler & Fergus
2013 Fig. 3), the lecture's AlexNet walk-through, and a hand-computed LRN."""
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers.lrn import LocalResponseNorm
from reference import build_on_meta, conv_linear_macs


def _volumes(model, size, kinds):
    """(C, H, W) after each layer of ``model.features`` of the given kinds, on meta."""
    x = torch.empty(1, 3, size, size, device="meta")
    out = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, kinds):
            out.append((type(layer).__name__, tuple(x.shape[1:])))
    return out


def test_alexnet_original_volumes_match_the_lecture_at_227():
    model = build_on_meta("alexnet_original")
    got = _volumes(model, 227, (nn.Conv2d, nn.MaxPool2d, LocalResponseNorm))
    want = [
        ("Conv2d", (96, 55, 55)), ("LocalResponseNorm", (96, 55, 55)), ("MaxPool2d", (96, 27, 27)),
        ("Conv2d", (256, 27, 27)), ("LocalResponseNorm", (256, 27, 27)), ("MaxPool2d", (256, 13, 13)),
        ("Conv2d", (384, 13, 13)), ("Conv2d", (384, 13, 13)), ("Conv2d", (256, 13, 13)),
        ("MaxPool2d", (256, 6, 6)),
    ]
    assert got == want


def test_alexnet_original_conv1_weights_and_kernel_shapes():
    model = build_on_meta("alexnet_original")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    # The lecture: CONV1 has (11*11*3)*96 = 34,848 weights.
    assert convs[0].weight.numel() == 34_848
    # Section 3.5: kernels 11x11x3, 5x5x48, 3x3x256, 3x3x192, 3x3x192 (half the maps per GPU).
    assert [tuple(c.weight.shape) for c in convs] == [
        (96, 3, 11, 11), (256, 48, 5, 5), (384, 256, 3, 3), (384, 192, 3, 3), (256, 192, 3, 3)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [tuple(fc.weight.shape) for fc in linears] == [(4096, 9216), (4096, 4096), (1000, 4096)]


def test_alexnet_original_grouped_conv2_sees_only_its_own_half():
    conv2 = [m for m in build_on_meta("alexnet_original").features if isinstance(m, nn.Conv2d)][1]
    conv2 = conv2.to_empty(device="cpu")
    nn.init.normal_(conv2.weight)
    x = torch.randn(1, 96, 9, 9, requires_grad=True)
    (grad,) = torch.autograd.grad(conv2(x)[:, :128].sum(), x)
    assert grad[:, :48].abs().sum() > 0 and torch.count_nonzero(grad[:, 48:]) == 0


def test_lrn_matches_the_papers_formula_by_hand():
    n, k, alpha, beta = 5, 2.0, 1e-4, 0.75
    a = torch.randn(1, 7, 2, 3) * 30
    want = torch.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        want[:, i] = a[:, i] / (k + alpha * a[:, lo:hi + 1].square().sum(1)) ** beta
    torch.testing.assert_close(LocalResponseNorm(n, alpha, beta, k)(a), want)


def test_lrn_rejects_a_bad_size():
    with pytest.raises(ValueError, match="size"):
        LocalResponseNorm(0)


def test_torchvision_alexnet_has_no_normalization_and_one_tower():
    model = build_on_meta("alexnet")
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert all(m.groups == 1 for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", ["zfnet", "zfnet_wide"])
def test_zfnet_volumes_match_figure_3(name):
    model = build_on_meta(name)
    c3, c4, c5 = (384, 384, 256) if name == "zfnet" else (512, 1024, 512)
    got = [v for _, v in _volumes(model, 224, (nn.Conv2d, nn.MaxPool2d))]
    assert got == [
        (96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13),
        (c3, 13, 13), (c4, 13, 13), (c5, 13, 13), (c5, 6, 6),
    ]
    conv1 = model.features[0]
    assert conv1.kernel_size == (7, 7) and conv1.stride == (2, 2)


def test_zfnet_wide_parameters_by_hand():
    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    def fc(fin, fout):
        return fin * fout + fout

    want = (conv(3, 96, 7) + conv(96, 256, 5) + conv(256, 512, 3) + conv(512, 1024, 3) + conv(1024, 512, 3)
            + fc(512 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000))
    assert sum(p.numel() for p in build_on_meta("zfnet_wide").parameters()) == want


def test_paper_models_normalize_before_or_after_pooling_as_published():
    def order(name):
        kinds = {nn.Conv2d: "conv", LocalResponseNorm: "norm", nn.MaxPool2d: "pool"}
        return [kinds[type(m)] for m in build_on_meta(name).features if type(m) in kinds][:6]

    # AlexNet: "Max-pooling layers follow both response-normalization layers".
    assert order("alexnet_original") == ["conv", "norm", "pool", "conv", "norm", "pool"]
    # ZFNet, Fig. 3: pool, then contrast normalization.
    assert order("zfnet") == ["conv", "pool", "norm", "conv", "pool", "norm"]


@pytest.mark.parametrize("name, size, gmacs", [("alexnet_original", 227, 0.72), ("zfnet", 224, 1.17)])
def test_multiply_accumulates_match_the_published_estimates(name, size, gmacs):
    # PAPERS.md: AlexNet ~0.72 GMACs, ZFNet ~1.17 GMACs (rounded to two decimals).
    assert round(conv_linear_macs(build_on_meta(name), size) / 1e9, 2) == gmacs


def test_alexnet_original_initialization_follows_section_5():
    torch.manual_seed(0)
    model = cnnlab.create_model("alexnet_original")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [int(layer.bias.mean().item()) for layer in layers] == [0, 1, 0, 1, 1, 1, 1, 0]
    assert all(torch.unique(layer.bias).numel() == 1 for layer in layers)
    fc6 = layers[5].weight
    assert abs(fc6.std().item() - 0.01) < 1e-4 and abs(fc6.mean().item()) < 1e-4


def test_unknown_config_is_rejected():
    from cnnlab.models.alexnet import AlexNet

    with pytest.raises(ValueError, match="unknown AlexNet config"):
        AlexNet("alexnet_v2")
