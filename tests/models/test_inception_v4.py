"""Inception-v4 and Inception-ResNet-v2: the grid sizes of the paper's figures, block
counts and residual scales (TF-slim/timm: 10/20/10 blocks, 0.17/0.10/0.20), the true
smallest input, bad inputs. Shape checks run on the meta device; one small real run."""
import pytest
import torch

import cnnlab
from cnnlab.models.base import InputSizeError
from cnnlab.models.inception import IRV2_A, IRV2_B, IRV2_C, V4_A, V4_B, V4_C, MixedBlock, ResidualMixedBlock
from test_inception_v3 import output_shapes


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def meta_input(size, batch=2, chans=3, width=None):
    return torch.empty(batch, chans, size, width or size, device="meta")


def test_inception_v4_grid_sizes_of_the_paper():
    # Fig. 3: stem 35x35x384; Fig. 9: Reduction-A -> 17x17x1024, Reduction-B -> 8x8x1536.
    model = meta_model("inception_v4").eval()
    shapes = output_shapes(model, ["features.3", "features.4", "features.5", "features.10", "features.18",
                                   "features.21"], meta_input(299))
    assert shapes == {
        "features.3": (160, 73, 73),  # Fig. 3: filter concat 73x73x160
        "features.4": (192, 71, 71),  # Fig. 3: filter concat 71x71x192
        "features.5": (384, 35, 35),
        "features.10": (1024, 17, 17),
        "features.18": (1536, 8, 8),
        "features.21": (1536, 8, 8),
    }
    assert model.num_features == 1536


def _layout(module):
    return sorted((k, tuple(v.shape)) for k, v in module.state_dict().items())


def test_inception_v4_block_counts():
    # Fig. 9: 4 x Inception-A, 7 x Inception-B, 3 x Inception-C.
    model = meta_model("inception_v4")
    with torch.device("meta"):
        refs = {"A": _layout(MixedBlock(384, V4_A)), "B": _layout(MixedBlock(1024, V4_B)),
                "C": _layout(MixedBlock(1536, V4_C))}
    layouts = [_layout(m) for m in model.features]
    assert {name: layouts.count(ref) for name, ref in refs.items()} == {"A": 4, "B": 7, "C": 3}
    assert len(model.features) == 3 + 3 + 4 + 1 + 7 + 1 + 3  # 3 convs, 3 mixed stem blocks, ...


def test_inception_resnet_v2_grid_sizes():
    model = meta_model("inception_resnet_v2").eval()
    shapes = output_shapes(model, ["maxpool_5a", "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a",
                                   "block8", "conv2d_7b"], meta_input(299))
    assert shapes == {
        "maxpool_5a": (192, 35, 35),
        "mixed_5b": (320, 35, 35),  # TF-slim's width; the paper's stem gives 384
        "repeat": (320, 35, 35),
        "mixed_6a": (1088, 17, 17),  # paper Fig. 17: 1154
        "repeat_1": (1088, 17, 17),
        "mixed_7a": (2080, 8, 8),  # paper Fig. 19: 2048
        "block8": (2080, 8, 8),
        "conv2d_7b": (1536, 8, 8),
    }


def test_inception_resnet_v2_block_counts_and_scales():
    model = meta_model("inception_resnet_v2")
    stages = {"repeat": (IRV2_A, 0.17), "repeat_1": (IRV2_B, 0.10), "repeat_2": (IRV2_C, 0.20)}
    counts = {}
    for name, (table, scale) in stages.items():
        blocks = list(model.get_submodule(name))
        assert all(isinstance(b, ResidualMixedBlock) and b.scale == scale for b in blocks)
        assert all(isinstance(b.act, torch.nn.ReLU) for b in blocks)
        assert all(len(b._plan) == len(table) for b in blocks)
        counts[name] = len(blocks)
    # 10 A, 20 B, and 9 + block8 = 10 C blocks (TF-slim / timm; the paper has 5 / 10 / 5)
    assert counts == {"repeat": 10, "repeat_1": 20, "repeat_2": 9}
    assert model.block8.scale == 1.0 and isinstance(model.block8.act, torch.nn.Identity)


def test_inception_resnet_v2_paper_depths_variant():
    full = meta_model("inception_resnet_v2")
    paper = meta_model("inception_resnet_v2", depths=(5, 10, 5))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    per_block = [n(full.repeat[0]), n(full.repeat_1[0]), n(full.repeat_2[0])]
    assert n(full) - n(paper) == 5 * per_block[0] + 10 * per_block[1] + 5 * per_block[2]
    assert paper.eval()(meta_input(299)).shape == (2, 1000)


@pytest.mark.parametrize("kwargs, match", [
    (dict(depths=(10, 20)), "depths"),
    (dict(depths=(10, 0, 10)), "depths"),
    (dict(scales=(0.1, "x", 0.2)), "scales"),
    (dict(drop_rate=-0.1), "drop_rate"),
])
def test_inception_resnet_v2_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        meta_model("inception_resnet_v2", **kwargs)


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
@pytest.mark.parametrize("train", [True, False])
def test_smallest_input_is_tight(name, train):
    model = meta_model(name).train(train)
    assert cnnlab.model_info(name).min_input_size == 75
    raw = lambda size: model.forward_head(model.forward_features(meta_input(size)))  # noqa: E731
    assert raw(75).shape == (2, 1000)  # 75 -> 37 -> 35 -> 17 -> 15 -> 7 -> 3 -> 1
    with pytest.raises(RuntimeError):
        raw(74)
    with pytest.raises(InputSizeError, match="at least 75x75"):
        model(meta_input(74))
    assert model.eval()(meta_input(75, width=140)).shape == (2, 1000)  # non-square is fine


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
def test_bad_inputs(name):
    model = meta_model(name)
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.empty(1, 3, 75, 75, dtype=torch.int64, device="meta"))
    with pytest.raises(InputSizeError, match="3 input channel"):
        model(meta_input(75, chans=4))
    with pytest.raises(InputSizeError, match="4-D"):
        model(torch.empty(3, 75, 75, device="meta"))


@pytest.mark.slow
@pytest.mark.parametrize("name, classifier", [("inception_v4", "last_linear"), ("inception_resnet_v2", "classif")])
def test_real_forward_at_smallest_input(name, classifier):
    torch.manual_seed(0)
    model = cnnlab.create_model(name, num_classes=10, in_chans=1).eval()
    assert model.get_classifier() is getattr(model, classifier)
    x = torch.randn(2, 1, 75, 75)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        single = model(x[:1])
    assert feats.shape == (2, 1536, 1, 1)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    torch.testing.assert_close(single, logits[:1], rtol=1e-4, atol=1e-5)  # rows independent in eval
