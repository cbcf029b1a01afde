"""Every registered model analyzes at its default size, on the meta device. Its conv +
linear MACs and parameters equal the reference manifest's where there is one
(tests/reference/*.json), and PyTorch's own FlopCounterMode count elsewhere."""
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from reference import build_on_meta, load_manifest, reference_names

REFERENCES = set(reference_names())


def flop_counter_macs(model, shape):
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(*shape, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.slow
@pytest.mark.parametrize("name", cnnlab.list_models())
def test_every_model_analyzes(name):
    model = build_on_meta(name).eval()
    a = cnnlab.analyze(model, training_estimate=False)
    info = cnnlab.model_info(name)
    assert a.input_shape == [1, *info.input_size]
    t = a.totals
    assert t["params"] == sum(p.numel() for p in model.parameters())
    if name in REFERENCES:
        ref = load_manifest(name)
        assert ref["input_size"] == info.input_size[-1]
        assert t["macs"] == ref["macs"] and t["params"] == ref["num_params"]
    elif len(a.layers) < 3000:  # (resnet1202 and preact_resnet1001 repeat the blocks of their shallower kin)
        assert t["macs"] == flop_counter_macs(model, a.input_shape)  # an independent counter
    assert t["coverage"]["unknown"] == {}, f"ops the counter does not know: {t['coverage']['unknown']}"
    assert t["receptive_field"] is not None and t["output_receptive_field"] is not None
    last = a.layers[-1]
    # the last row is the classifier, with one score per class: a Linear's N x classes, or a
    # 1x1 conv's N x classes x 1 x 1 (flattened by a view, which gets no row)
    shape = last["output_shape"]
    assert shape[:2] == [1, info.num_classes] and math.prod(shape[2:]) == 1, (last["name"], shape)
    if isinstance(model.get_classifier(), nn.Conv2d) and last["name"] != model.classifier_name:
        # a class map averaged afterwards (NiN, SqueezeNet): the last row is that global pool
        assert last["type"] == "AdaptiveAvgPool2d", last
    else:
        assert last["name"] == model.classifier_name, (last["name"], model.classifier_name)
    # in eval mode the auxiliary heads (GoogLeNet's aux1/aux2, Inception-v3's AuxLogits) do not
    # run: their parameters, and only theirs, are not in the forward pass
    aux = sum(p.numel() for k, p in model.named_parameters() if k.split(".")[0].lower().startswith("aux"))
    assert t["params_not_in_forward"] == aux
    assert (aux > 0) == bool(info.aux_loss_weights)
    top = [r for r in a.layers if r["depth"] == 1]
    assert sum(r["macs"] for r in top) == t["macs"]
    assert sum(r["params"] for r in top) + t["params_not_in_forward"] == t["params"]
    by_name = {}
    for r in a.layers:
        by_name.setdefault(r["parent"], []).append(r)
    for r in a.layers:
        children = by_name.get(r["name"])
        if children:
            assert r["macs"] == sum(c["macs"] for c in children), r["name"]
            assert r["memory"] == sum(c["memory"] for c in children), r["name"]
    assert model.training is False  # the caller's mode is kept
