"""NASNet models: drop-path schedule, auxiliary head, timm checkpoint mapping."""
import pytest
import torch

import cnnlab
from cnnlab.models.base import AuxOutput
from cnnlab.models.nasnet import NASNet, timm_to_cnnlab_state_dict
from reference import build_on_meta, load_manifest


def _tiny(**kw):
    args = dict(filters=8, cells_per_stage=1, stem="cifar", stem_chs=12, num_classes=5, pad_type="symmetric")
    args.update(kw)
    return NASNet(**args)


def test_drop_path_linear_in_depth_and_scheduled():
    model = _tiny(drop_path_rate=0.4)
    names = [n for n, _, _ in model._plan]
    probs = [getattr(model, n).drop_prob for n in names]
    # Reference code: keep = 1 - (i + 1) / num_cells * (1 - keep_prob), i over all cells.
    assert probs == pytest.approx([0.4 * (i + 1) / len(names) for i in range(len(names))])
    model.set_drop_path_progress(0.25)
    assert getattr(model, names[-1]).drop_prob == pytest.approx(0.1)
    model.set_drop_path_progress(7)  # clamped to 1
    assert getattr(model, names[-1]).drop_prob == pytest.approx(0.4)


def test_drop_path_on_in_train_off_in_eval():
    torch.manual_seed(0)
    model = _tiny(drop_path_rate=0.5)
    cell = model.cell_2  # the last cell: drop probability 0.5
    x = torch.randn(4, cell.conv_1x1.conv.in_channels, 2, 2)
    xp = torch.randn(4, cell.path_1.conv.in_channels, 4, 4)  # h1 from before the reduction
    with torch.no_grad():
        cell.eval()
        y_eval = cell(x, xp)
        cell.drop_prob = 0.0
        torch.testing.assert_close(cell(x, xp), y_eval)  # eval: drop path does nothing
        cell.train()
        ref = cell(x, xp)
        cell.drop_prob = 0.5
        torch.manual_seed(1)
        a = cell(x, xp)
        torch.manual_seed(2)
        b = cell(x, xp)
        assert not torch.allclose(a, b) and not torch.allclose(a, ref)  # random per call in train
        model.set_drop_path_progress(0.0)  # schedule start: nothing dropped yet
        torch.testing.assert_close(cell(x, xp), ref)


def test_drop_path_is_per_sample():
    torch.manual_seed(0)
    model = _tiny(drop_path_rate=0.5)
    cell = model.cell_2.train()
    assert 0 < cell.drop_prob < 1
    # Block 4's left op (sep3): some samples dropped whole, the rest kept and scaled by 1/keep.
    seen = []
    cell.comb_iter_4_left.register_forward_hook(lambda m, i, o: seen.append(o.clone()) and None)
    y = cell._op("comb_iter_4_left", torch.randn(64, cell.filters, 2, 2))
    zero = (y.flatten(1) == 0).all(1)
    assert 0 < zero.sum() < 64
    torch.testing.assert_close(y[~zero], seen[0][~zero] / (1 - cell.drop_prob))


@pytest.mark.parametrize("name", ["nasnetalarge", "nasnetamobile", "nasnet_cifar"])
def test_aux_head_train_only_at_min_input(name):
    # On the meta device (shapes and autograd only; fast even for nasnetalarge).
    info = cnnlab.model_info(name)
    model = build_on_meta(name, aux_head=True, num_classes=7)
    assert model.aux_loss_weights == (0.4,)
    s = info.min_input_size
    x = torch.empty(2, 3, s, s, device="meta")
    out = model.train()(x)
    assert isinstance(out, AuxOutput) and out.logits.shape == out.aux[0].shape == (2, 7)
    (out.logits.sum() + out.aux[0].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)
    model.reset_classifier(3)
    assert model.train()(x).aux[0].shape == (2, 3)


def test_aux_head_values_on_cpu():
    torch.manual_seed(0)
    model = _tiny(aux_head=True, aux_grid=2).train()
    out = model(torch.randn(2, 3, 8, 8))
    assert torch.isfinite(out.aux[0]).all() and out.aux[0].shape == (2, 5)
    assert not torch.allclose(out.aux[0], out.logits)


@pytest.mark.parametrize("name,grid", [("nasnetalarge", 6), ("nasnetamobile", 4), ("nasnet_cifar", 4)])
def test_aux_head_reads_last_stage2_cell_and_its_grid(name, grid):
    # The reference head sits after the last normal cell before the 2nd reduction and
    # average-pools 5x5/3 'valid': (21 - 5) // 3 + 1 = 6 (large), (14 - 5) // 3 + 1 = 4
    # (mobile), (16 - 5) // 3 + 1 = 4 (cifar); at the default input no resampling.
    model = build_on_meta(name, aux_head=True).train()
    n = model.model_info.input_size[-1]
    shapes = {}

    def hook(module, inputs, output):
        shapes["in"] = inputs[0].shape

    model.aux_head.conv.register_forward_hook(hook)
    model(torch.empty(2, 3, n, n, device="meta"))
    cells = [c for c, _, _ in model._plan if c.startswith("cell_") and not c.startswith("cell_stem")]
    assert model.aux_after == cells[2 * len(cells) // 3 - 1]
    assert shapes["in"][-2:] == (grid, grid) and model.aux_head.grid == grid


def test_defaults_have_no_aux_head_and_published_widths():
    for name in ("nasnetalarge", "nasnetamobile", "nasnet_cifar"):
        model = build_on_meta(name)
        assert model.aux_head is None and model.aux_loss_weights == ()


def test_timm_state_dict_maps_one_to_one():
    manifest = load_manifest("nasnetalarge")["state_dict"]
    timm_sd = {k: torch.empty(shape, device="meta") for k, shape in manifest.items()}
    mapped = timm_to_cnnlab_state_dict(timm_sd)
    model = build_on_meta("nasnetalarge")
    ours = model.state_dict()
    assert sorted(mapped) == sorted(ours)
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    model.load_state_dict(mapped, strict=True, assign=True)
    with pytest.raises(KeyError, match="not timm NASNet keys"):
        timm_to_cnnlab_state_dict({"classifier.weight": torch.empty(1)})


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="stem"):
        _tiny(stem="mnist")
    with pytest.raises(ValueError, match="drop_path_rate"):
        _tiny(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="filters"):
        _tiny(filters=0)
    from cnnlab.models.nasnet import NASNET_A_NORMAL
    with pytest.raises(ValueError, match="reduction"):
        _tiny(reduction=NASNET_A_NORMAL)


@pytest.mark.parametrize("name,cell,h0,h1", [
    # timm/TF large (skip_reduction_layer_input=1): cell_6(reduction_cell_0, cell_4).
    ("nasnetalarge", "cell_6", "reduction_cell_0", "cell_4"),
    ("nasnetalarge", "cell_7", "cell_6", "reduction_cell_0"),
    ("nasnetalarge", "reduction_cell_1", "cell_11", "cell_10"),
    # TF mobile and CIFAR configs (skip_reduction_layer_input=0): the cell right before.
    ("nasnetamobile", "cell_4", "reduction_cell_0", "cell_3"),
    ("nasnet_cifar", "cell_12", "reduction_cell_1", "cell_11"),
    ("nasnet_cifar", "cell_0", "stem", None),  # the first CIFAR cell reads its raw input as h1
    ("nasnetamobile", "cell_stem_0", "stem", None),
    ("nasnetamobile", "cell_stem_1", "cell_stem_0", "stem"),
])
def test_cell_inputs(name, cell, h0, h1):
    model = build_on_meta(name)
    names = ["stem"] + [n for n, _, _ in model._plan]
    plan = {n: (names[i0], None if i1 is None else names[i1]) for n, i0, i1 in model._plan}
    assert plan[cell] == (h0, h1)


def test_batch_norm_epsilon_per_reference_config():
    eps = {name: {m.eps for m in build_on_meta(name).modules() if isinstance(m, torch.nn.BatchNorm2d)}
           for name in ("nasnetalarge", "nasnetamobile", "nasnet_cifar")}
    assert eps == {"nasnetalarge": {1e-3}, "nasnetamobile": {1e-3}, "nasnet_cifar": {1e-5}}
