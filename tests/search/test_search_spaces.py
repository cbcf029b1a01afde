"""Search spaces: token counts from the papers, round trips, and every sampled architecture builds and runs."""
import math
import random

import pytest
import torch

from cnnlab.layers.nas_cell import OPS
from cnnlab.search.spaces import LayersSpace, NasnetSpace, get_space
from cnnlab.search.strategies import get_strategy


def test_nasnet_space_has_the_papers_decisions():
    s = get_space("nasnet")
    # B = 5 blocks x 5 steps x 2 cells (Zoph et al. 2017, Sec. 3)
    assert len(s.decisions) == 50
    assert set(s.decisions[2].choices) == set(OPS) and len(OPS) == 13
    # block b may read h0, h1 or blocks 0..b-1: 2 + b choices; combine is add or concat
    sizes = {d.name: d.size for d in s.decisions}
    assert [sizes[f"normal.block{b}.left"] for b in range(5)] == [2, 3, 4, 5, 6]
    assert sizes["reduction.block4.combine"] == 2
    per_cell = math.prod((2 + b) ** 2 * 13 ** 2 * 2 for b in range(5))
    assert s.num_architectures == per_cell ** 2


def test_layers_space_decisions_follow_zoph_and_le():
    s = get_space("layers", num_layers=4)
    names = [d.name for d in s.decisions]
    # per layer: height, width, filters, then one skip token per earlier layer
    assert names[:3] == ["layer0.filter_height", "layer0.filter_width", "layer0.filters"]
    assert names[3:7] == ["layer1.filter_height", "layer1.filter_width", "layer1.filters", "layer1.reads_layer0"]
    assert len(s.decisions) == 4 * 3 + (0 + 1 + 2 + 3)
    assert get_space("layers-tiny").num_architectures == 2 ** 6 * 2 ** 3 == 512


def test_layers_decode_wires_skips_and_outputs():
    s = get_space("layers", num_layers=3, filter_heights=[1, 3], filter_widths=[3], num_filters=[4, 8])
    # layer0: h3 f8; layer1: h1 f4, reads nothing (image); layer2: h3 f4 reads layer 0 only
    tokens = (1, 1, 0, 0, 0, 1, 0, 1, 0)
    arch = s.decode(tokens)
    assert arch["layers"][1]["inputs"] == [] and arch["layers"][2]["inputs"] == [0]
    assert s.encode(arch) == tokens
    net = s.build(tokens, num_classes=5, in_chans=2)
    # unread outputs (layers 1 and 2) are concatenated: 4 + 4 features
    assert net.outputs == [1, 2] and net.num_features == 8
    assert net.convs[2][0].in_channels == 8  # reads layer 0 (8 filters)
    assert net.convs[1][0].in_channels == 2  # the image
    assert net.convs[0][0].kernel_size == (3, 3) and net.convs[1][0].kernel_size == (1, 3)
    assert net(torch.randn(2, 2, 6, 6)).shape == (2, 5)


@pytest.mark.parametrize("name,args", [("layers", {"num_layers": 4}), ("layers-tiny", {}),
                                       ("nasnet", {"num_blocks": 5, "filters": 4, "stem_chs": 8})])
def test_every_sampled_architecture_builds_a_model_that_runs(name, args):
    space = get_space(name, **args)
    rng = random.Random(0)
    samples = [space.random_tokens(rng) for _ in range(12)]
    ctrl = get_strategy("reinforce", space, seed=1)
    samples += [ctrl.ask()[0] for _ in range(4)]
    for tokens in samples:
        assert space.encode(space.decode(tokens)) == tuple(tokens)
        assert space.tokens_at(space.index(tokens)) == tuple(tokens)
        model = space.build(tokens, num_classes=10, in_chans=1).eval()
        out = model(torch.randn(2, 1, 8, 8))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_nasnet_genotypes_are_what_the_tokens_say():
    s = get_space("nasnet", num_blocks=2, ops=["identity", "sep_conv_3x3", "max_pool_3x3"])
    tokens = [0] * len(s.decisions)
    names = [d.name for d in s.decisions]
    tokens[names.index("normal.block1.left")] = 2  # block 1 reads block 0
    tokens[names.index("normal.block1.right_op")] = 1  # sep_conv_3x3
    tokens[names.index("reduction.block0.combine")] = 1  # concat
    normal, reduction = s.genotypes(s.decode(tokens))
    assert normal.blocks[1].left == 2 and normal.blocks[1].right_op == "sep_conv_3x3"
    assert normal.concat == (3,)  # block 0 is read by block 1; only block 1's output is unused
    assert reduction.reduction and reduction.blocks[0].combine == "concat" and reduction.concat == (2, 3)
    model = s.build(tokens, num_classes=3, in_chans=3)
    assert model.cell_0.genotype == normal and model.reduction_cell_0.genotype == reduction


@pytest.mark.parametrize("name,args,match", [
    ("transformer", {}, "unknown search space"),
    ("layers", {"num_layers": 0}, "num_layers"),
    ("layers", {"filter_heights": [2]}, "odd"),
    ("nasnet", {"ops": ["conv_9x9"]}, "unknown op"),
    ("nasnet", {"depth": 3}, "unexpected keyword"),
])
def test_bad_space_arguments(name, args, match):
    with pytest.raises(ValueError, match=match):
        get_space(name, **args)


def test_tokens_out_of_range_are_refused():
    s = LayersSpace(num_layers=2)
    with pytest.raises(ValueError, match="takes"):
        s.decode([0, 0])
    with pytest.raises(ValueError, match="must be in"):
        s.decode([9] * len(s.decisions))
    with pytest.raises(ValueError, match="not in the space"):
        s.encode({"layers": [{"filter_height": 2, "filter_width": 1, "filters": 24, "inputs": []}] * 2})
    assert isinstance(NasnetSpace(num_blocks=1), NasnetSpace)
