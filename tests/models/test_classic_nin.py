"""Network in Network (Lin et al. 2014): mlpconv layers and global average pooling."""
import torch
from torch import nn

import cnnlab
from reference import build_on_meta, conv_linear_macs

# (in, out, kernel) of every convolution of the CIFAR-10 model, as PAPERS.md lists it.
NIN_CONVS = [
    (3, 192, 5), (192, 160, 1), (160, 96, 1),
    (96, 192, 5), (192, 192, 1), (192, 192, 1),
    (192, 192, 3), (192, 192, 1), (192, 10, 1),
]


def test_convolutions_and_parameters_by_hand():
    model = build_on_meta("nin")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == NIN_CONVS
    assert all(c.padding[0] == c.kernel_size[0] // 2 for c in convs)  # "same" convolutions
    by_hand = sum(cin * cout * k * k + cout for cin, cout, k in NIN_CONVS)
    assert sum(p.numel() for p in model.parameters()) == by_hand == 966_986


def test_no_fully_connected_layer():
    assert not any(isinstance(m, nn.Linear) for m in build_on_meta("nin").modules())


def test_feature_map_sizes_at_32():
    model = build_on_meta("nin")
    x = torch.empty(1, 3, 32, 32, device="meta")
    sizes = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(96, 16, 16), (192, 8, 8)]
    assert tuple(x.shape[1:]) == (192, 8, 8)


def test_logits_are_the_spatial_mean_of_the_class_maps():
    model = cnnlab.create_model("nin").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        maps = torch.relu(model.classifier(feats))  # N x 10 x 8 x 8
        torch.testing.assert_close(model(x), maps.mean((2, 3)))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)


def test_multiply_accumulates_at_32():
    # Each convolution costs (output pixels) x (weights); the maps are 32, 16 and 8 wide.
    sizes = [32] * 3 + [16] * 3 + [8] * 3
    by_hand = sum(s * s * cin * cout * k * k for s, (cin, cout, k) in zip(sizes, NIN_CONVS))
    assert conv_linear_macs(build_on_meta("nin"), 32) == by_hand
    assert round(by_hand / 1e9, 2) == 0.22  # PAPERS.md: ~0.22 GMACs
