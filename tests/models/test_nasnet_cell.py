"""The generic genotype-driven NASNet cell: NASNet-A's wiring, other genotypes, padding,
factorized reduction. Small widths and inputs throughout (fast on 2 cores)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.nas_cell import OPS, Block, Cell, FactorizedReduce, Genotype, SeparableBranch, random_genotype
from cnnlab.layers.padding import make_conv2d, make_pool2d, pad_same
from cnnlab.models.nasnet import NASNET_A_NORMAL, NASNET_A_REDUCTION, NASNet


def _cell(genotype, filters=8, in_chs=16, prev_chs=12, prev_reduced=False, pad_type="symmetric"):
    cell = Cell(genotype, in_chs, prev_chs, filters, prev_reduced, pad_type).eval()
    with torch.no_grad():  # non-trivial BN statistics so that a mis-wiring shows
        for m in cell.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return cell


def _kernel(branch):
    return branch.separable_1.depthwise_conv2d.kernel_size[0]


def test_paper_normal_cell_formula():
    # PAPERS.md, NASNet-A normal cell (h0 = previous cell, h1 = the one before):
    # b0 = sep5(h0) + sep3(h1); b1 = sep5(h1) + sep3(h1); b2 = avg3(h0) + h1;
    # b3 = avg3(h1) + avg3(h1); b4 = sep3(h0) + h0; out = concat(h1, b0..b4).
    cell = _cell(NASNET_A_NORMAL)
    x, xp = torch.randn(2, 16, 9, 9), torch.randn(2, 12, 9, 9)
    ops = {n: m for n, m in cell.named_children() if n.startswith("comb_iter")}
    sep = {n: _kernel(m) for n, m in ops.items() if isinstance(m, SeparableBranch)}
    assert sep == {"comb_iter_0_left": 5, "comb_iter_0_right": 3, "comb_iter_1_left": 5,
                   "comb_iter_1_right": 3, "comb_iter_4_left": 3}

    def avg3(t):
        return F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)

    with torch.no_grad():
        h0 = cell.conv_1x1(x)
        h1 = cell.conv_prev_1x1(xp)
        b0 = ops["comb_iter_0_left"](h0) + ops["comb_iter_0_right"](h1)
        b1 = ops["comb_iter_1_left"](h1) + ops["comb_iter_1_right"](h1)
        b2 = avg3(h0) + h1
        b3 = avg3(h1) + avg3(h1)
        b4 = ops["comb_iter_4_left"](h0) + h0
        want = torch.cat([h1, b0, b1, b2, b3, b4], 1)
        got = cell(x, xp)
    assert got.shape == (2, 6 * 8, 9, 9) and cell.out_chs == 48
    torch.testing.assert_close(got, want)


def test_paper_reduction_cell_formula():
    # PAPERS.md, reduction cell (stride 2 on ops reading h0/h1): b0 = sep5(h0) + sep7(h1);
    # b1 = max3(h0) + sep7(h1); b2 = avg3(h0) + sep5(h1); b3 = b1 + avg3(b0);
    # b4 = sep3(b0) + max3(h0); out = concat(b1, b2, b3, b4).
    cell = _cell(NASNET_A_REDUCTION)
    x, xp = torch.randn(2, 16, 9, 9), torch.randn(2, 12, 9, 9)
    ops = {n: m for n, m in cell.named_children() if n.startswith("comb_iter")}
    strides = {n: m.separable_1.depthwise_conv2d.stride[0] for n, m in ops.items() if isinstance(m, SeparableBranch)}
    assert strides == {"comb_iter_0_left": 2, "comb_iter_0_right": 2, "comb_iter_1_right": 2,
                       "comb_iter_2_right": 2, "comb_iter_4_left": 1}
    with torch.no_grad():
        h0, h1 = cell.conv_1x1(x), cell.conv_prev_1x1(xp)
        b0 = ops["comb_iter_0_left"](h0) + ops["comb_iter_0_right"](h1)
        b1 = F.max_pool2d(h0, 3, 2, 1) + ops["comb_iter_1_right"](h1)
        b2 = F.avg_pool2d(h0, 3, 2, 1, count_include_pad=False) + ops["comb_iter_2_right"](h1)
        b3 = b1 + F.avg_pool2d(b0, 3, 1, 1, count_include_pad=False)
        b4 = ops["comb_iter_4_left"](b0) + F.max_pool2d(h0, 3, 2, 1)
        want = torch.cat([b1, b2, b3, b4], 1)
        got = cell(x, xp)
    assert got.shape == (2, 4 * 8, 5, 5)
    torch.testing.assert_close(got, want)


def _stage_widths(model):
    return [(name, getattr(model, name).out_chs) for name, _, _ in model._plan]


@pytest.mark.parametrize("name,F,N,stem_cells,P", [
    # N @ P from the paper's tables; F = P / 24 (penultimate = 6 states of 4F).
    ("nasnetalarge", 168, 6, True, 4032),
    ("nasnetamobile", 44, 4, True, 1056),
    ("nasnet_cifar", 32, 6, False, 768),
])
def test_published_channel_counts_every_stage(name, F, N, stem_cells, P):
    from reference import build_on_meta

    model = build_on_meta(name)
    assert 24 * F == P == model.num_features
    want = []
    if stem_cells:  # reduction cells at F/4 and F/2 concatenating 4 blocks
        want += [("cell_stem_0", 4 * (F // 4)), ("cell_stem_1", 4 * (F // 2))]
    for stage in range(3):
        width = F * 2 ** stage
        if stage:
            want.append((f"reduction_cell_{stage - 1}", 4 * width))
        want += [(f"cell_{stage * N + i}", 6 * width) for i in range(N)]
    assert _stage_widths(model) == want


@pytest.mark.parametrize("name,size,sides", [
    # Spatial sides after the stem conv, each stem cell and each stage (ceil halving;
    # 'valid' 3x3/2 stem conv on ImageNet).
    ("nasnetalarge", 331, [165, 83, 42, 42, 21, 11]),
    ("nasnetamobile", 224, [111, 56, 28, 28, 14, 7]),
    ("nasnet_cifar", 32, [32, 32, 16, 8]),
])
def test_spatial_sizes(name, size, sides):
    from reference import build_on_meta

    model = build_on_meta(name).eval()
    seen = {}
    for n, _, _ in model._plan:
        getattr(model, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape[-1]))
    model.conv0.register_forward_hook(lambda m, i, o: seen.__setitem__("conv0", o.shape[-1]))
    model(torch.empty(1, 3, size, size, device="meta"))
    last = [n for n, _, _ in model._plan][-1]
    order = ["conv0", "cell_stem_0", "cell_stem_1", "cell_0", "reduction_cell_0", last]
    assert [seen[n] for n in order if n in seen] == sides


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("reduction", [False, True])
def test_random_genotype_cell_runs(seed, reduction):
    g = random_genotype(5, reduction=reduction, seed=seed)
    for prev_chs, prev_reduced in ((12, False), (12, True), (None, False)):
        cell = Cell(g, 16, prev_chs, 8, prev_reduced)
        side = 9
        xp = torch.randn(2, prev_chs or 16, 2 * side if prev_reduced else side, 2 * side if prev_reduced else side)
        out = cell(torch.randn(2, 16, side, side), xp if prev_chs else None)
        out_side = math.ceil(side / 2) if reduction else side
        assert out.shape == (2, cell.out_chs, out_side, out_side)
        assert cell.out_chs == sum(8 if s < 2 or g.blocks[s - 2].combine == "add" else 16 for s in g.concat)


def test_random_genotypes_build_a_whole_network_and_train():
    torch.manual_seed(0)
    normal = random_genotype(5, seed=11)
    reduction = random_genotype(5, reduction=True, seed=12)
    model = NASNet(normal=normal, reduction=reduction, filters=8, cells_per_stage=1, stem="cifar", stem_chs=12,
                   num_classes=10, drop_path_rate=0.2, aux_head=True, aux_grid=2).train()
    out = model(torch.randn(2, 3, 16, 16))
    assert out.logits.shape == out.aux[0].shape == (2, 10)
    (out.logits.square().mean() + out.aux[0].square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_every_op_builds_with_stride_and_width_change():
    x = torch.randn(2, 6, 7, 7)
    for name, build in OPS.items():
        for pad_type in ("symmetric", "same"):
            for stride in (1, 2):
                out = build(6, 4, stride, pad_type)(x)
                assert out.shape == (2, 4, math.ceil(7 / stride), math.ceil(7 / stride)), (name, pad_type, stride)


def test_genotype_validation_messages():
    with pytest.raises(ValueError, match="unknown op"):
        Genotype((Block(0, "sep_conv_9x9", 1, "identity"),), (2,))
    with pytest.raises(ValueError, match="reads state 3"):
        Genotype((Block(0, "identity", 3, "identity"),), (2,))
    with pytest.raises(ValueError, match="combine"):
        Genotype((Block(0, "identity", 1, "identity", "mul"),), (2,))
    with pytest.raises(ValueError, match="concat"):
        Genotype((Block(0, "identity", 1, "identity"),), (5,))
    with pytest.raises(ValueError, match="pad_type"):
        Cell(NASNET_A_NORMAL, 8, 8, 8, pad_type="valid")


def test_factorized_reduction_samples_even_and_odd_pixels():
    fr = FactorizedReduce(1, 2).eval()
    with torch.no_grad():
        fr.path_1.conv.weight.fill_(1.0)
        fr.path_2.conv.weight.fill_(1.0)
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    with torch.no_grad():  # fresh BN in eval: divides by sqrt(1 + eps)
        y = fr(x) * math.sqrt(1 + fr.final_path_bn.eps)
    torch.testing.assert_close(y[0, 0], x[0, 0, ::2, ::2])  # rows/cols 0, 2, 4
    odd = torch.tensor([[6.0, 8.0, 0.0], [16.0, 18.0, 0.0], [0.0, 0.0, 0.0]])  # rows/cols 1, 3, then zero pad
    torch.testing.assert_close(y[0, 1], odd)


@pytest.mark.parametrize("size,k,pads", [
    # TF SAME: total = max((ceil(n/s) - 1) * s + k - n, 0), the extra pixel bottom/right.
    (42, 5, (1, 2)), (42, 3, (0, 1)), (42, 7, (2, 3)), (83, 5, (2, 2)), (21, 3, (1, 1)),
])
def test_pad_same_matches_tensorflow_rule(size, k, pads):
    x = torch.ones(1, 1, size, size)
    y = pad_same(x, k, 2)
    top, bottom = pads
    assert y.shape[-1] == size + top + bottom
    assert y[0, 0, top, top] == 1 and (top == 0 or y[0, 0, top - 1, top] == 0)
    conv = make_conv2d(1, 1, k, 2, pad_type="same")
    assert conv(x).shape[-1] == math.ceil(size / 2)
    assert make_pool2d("max", k, 2, "same")(x).shape[-1] == math.ceil(size / 2)


def test_input_states_in_a_reduction_output_are_reduced():
    # h1 (raw, 16 channels) and h0 are concatenated into a reduction cell's output:
    # both must come out at half resolution and `filters` wide.
    g = Genotype((Block(0, "conv_3x3", 1, "max_pool_3x3", "concat"),), concat=(0, 1, 2), reduction=True)
    cell = Cell(g, 16, None, 8)
    out = cell(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 8 + 8 + 16, 4, 4)
    assert isinstance(cell.reduce_state_0, FactorizedReduce) and isinstance(cell.reduce_state_1, FactorizedReduce)
    assert cell.reduce_state_1.path_1.conv.in_channels == 16
