"""Checks that hold for every registered model, parametrized over the registry."""
import math

import pytest
import torch

import cnnlab
from cnnlab.models.base import AuxOutput, InputSizeError
from cnnlab.registry import DATASET_KINDS, UnknownModelError
from reference import build_on_meta

ALL = cnnlab.list_models()
# Very deep or very wide models: still run by CI, deselectable with -m "not slow".
SLOW = {"resnet1202", "preact_resnet1001", "senet154", "nasnetalarge", "densenet_bc_190_40",
        "densenet_bc_250_24", "resnext29_16x64d", "inception_resnet_v2", "inception_v4", "inception_v3"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ALL]


def test_registry_is_populated():
    assert len(ALL) >= 10
    assert ALL == sorted(ALL)
    assert cnnlab.list_models("vgg1?") == [n for n in ALL if n.startswith("vgg1") and len(n) == 5]


@pytest.mark.parametrize("name", ALL)
def test_model_info(name):
    info = cnnlab.model_info(name)
    assert info.name == name
    assert info.dataset in DATASET_KINDS
    c, h, w = info.input_size
    assert c >= 1 and h == w
    assert 1 <= info.min_input_size <= h
    assert info.paper.title and info.paper.authors and 1980 < info.paper.year < 2030
    assert info.paper.arxiv or info.paper.venue
    assert info.num_classes >= 1
    assert info.published.source, f"{name}: published figures need a source"
    assert info.family


@pytest.mark.parametrize("name", ALL)
def test_params_match_published(name):
    info = cnnlab.model_info(name)
    model = build_on_meta(name)
    n = sum(p.numel() for p in model.parameters())
    assert model.num_classes == info.num_classes
    want = info.published.params
    if want is None:
        pytest.skip(f"{name}: no published parameter count")
    if info.published.params_exact:
        assert n == want
    else:
        assert abs(n - want) <= 0.02 * want, f"{n:,} vs published ~{want:,}"


def _loss(out):
    if isinstance(out, AuxOutput):
        return out.logits.square().mean() + sum(a.square().mean() for a in out.aux)
    return out.square().mean()


@pytest.mark.parametrize("name", PARAMS)
def test_forward_backward_at_smallest_input(name):
    info = cnnlab.model_info(name)
    torch.manual_seed(0)
    model = cnnlab.create_model(name)
    assert model.model_info is info
    c = info.input_size[0]
    s = info.min_input_size
    x = torch.randn(2, c, s, s)
    model.train()
    out = model(x)
    if info.aux_loss_weights:
        assert isinstance(out, AuxOutput), "models with aux heads return AuxOutput in training"
        assert len(out.aux) == len(info.aux_loss_weights) == len(model.aux_loss_weights)
        assert all(a.shape == (2, info.num_classes) for a in out.aux)
        logits = out.logits
    else:
        logits = out
    assert logits.shape == (2, info.num_classes)
    assert torch.isfinite(logits).all()
    _loss(out).backward()
    no_grad = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters the loss never reaches: {no_grad[:6]}"

    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, info.num_classes)
    feats = model.forward_features(x)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)

    model.reset_classifier(7)
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(x).shape == (2, 7)

    model.train()  # info.min_input_size holds in both modes (inception_v3 takes less in eval)
    if s > 1:
        with pytest.raises(InputSizeError, match=f"at least {s}x{s}"):
            model(torch.randn(1, c, s - 1, s - 1))
    with pytest.raises(InputSizeError, match="channel"):
        model(torch.randn(1, c + 1, s, s))


@pytest.mark.parametrize("name", ALL)
def test_other_class_and_channel_counts(name):
    info = cnnlab.model_info(name)
    other = 1 if info.input_size[0] == 3 else 3
    model = build_on_meta(name, num_classes=5, in_chans=other)
    s = info.min_input_size
    out = model.eval()(torch.empty(1, other, s, s, device="meta"))
    assert out.shape == (1, 5)


@pytest.mark.parametrize("bad", [-1, -3, 2.5, True])  # 0 is allowed: pooled features (timm)
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        cnnlab.create_model(ALL[0], num_classes=bad)


def test_unknown_model_names_close_matches():
    with pytest.raises(UnknownModelError, match="resnet50"):
        cnnlab.create_model("resnet5O")
    with pytest.raises(UnknownModelError):
        cnnlab.model_info("no_such_model")


def test_unknown_builder_argument():
    with pytest.raises(TypeError, match="unexpected argument"):
        cnnlab.create_model(ALL[0], no_such_option=1)


def test_builders_are_keyword_only():
    with pytest.raises(TypeError):
        cnnlab.registry._BUILDERS[ALL[0]](10)
