"""Every model that torchvision or timm also implement matches its reference manifest:
the same state_dict keys and shapes, parameter count, conv+linear MACs, and output
fingerprint after the seeded fill (tests/reference/)."""
import pytest
import torch

import cnnlab
from reference import (
    build_on_meta,
    conv_linear_macs,
    fingerprint,
    fingerprint_mismatches,
    load_manifest,
    reference_names,
    seeded_fill,
    seeded_input,
    state_dict_layout,
)

# Fingerprints at full resolution of the largest models take a few seconds each here.
SLOW = {
    "nasnetalarge", "senet154", "inception_resnet_v2", "inception_v4", "resnet200",
    "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2", "vgg19", "vgg19_bn",
    "vgg16", "vgg16_bn", "densenet161", "densenet201", "resnet152", "inception_v3",
}

NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in reference_names()]


def _registered(name):
    if not cnnlab.registry.is_model(name):
        pytest.fail(f"{name} has a reference manifest but is not registered")


@pytest.mark.parametrize("name", reference_names())
def test_state_dict_layout(name):
    _registered(name)
    want = load_manifest(name)["state_dict"]
    got = state_dict_layout(build_on_meta(name))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"missing {missing[:8]} ... extra {extra[:8]} ..."
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, f"shape mismatches (got, want): {dict(list(wrong.items())[:8])}"


@pytest.mark.parametrize("name", reference_names())
def test_params_and_macs(name):
    _registered(name)
    ref = load_manifest(name)
    model = build_on_meta(name)
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert conv_linear_macs(model, ref["input_size"]) == ref["macs"]


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint(name):
    _registered(name)
    ref = load_manifest(name)
    model = cnnlab.create_model(name).eval()
    for want in ref["fingerprints"]:
        seeded_fill(model, want["seed"])
        with torch.no_grad():
            logits = model(seeded_input(want["seed"], want["input_size"]))
        problems = fingerprint_mismatches(fingerprint(logits), want)
        assert not problems, f"{name} seed {want['seed']}: " + "; ".join(problems[:6])
