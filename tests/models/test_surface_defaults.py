"""The head defaults of ``CnnModel``: classifier_name, get_classifier, new_classifier,
reset_classifier and forward_head, on tiny models written here, plus one invariant
over every registered model (built on the meta device, so it costs little)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models.base import CnnModel, fresh_class_layer
from cnnlab.registry import create_model, list_models


class TinyNet(CnnModel):
    """conv -> the base class's head (global_pool -> [head_drop] -> fc)."""

    def __init__(self, num_classes: int = 4, drop: float | None = None):
        super().__init__()
        self.num_classes, self.num_features, self.in_chans = num_classes, 6, 3
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        if drop is not None:
            self.head_drop = nn.Dropout(drop)
        self.fc = nn.Linear(6, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TinyConvHead(CnnModel):
    """A class-map head inside a Sequential, named by a dotted path (as SqueezeNet's)."""

    classifier_name = "head.1"

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.num_classes, self.num_features, self.in_chans = num_classes, 6, 3
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(6, num_classes, 1), nn.AdaptiveAvgPool2d(1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean((2, 3)) if pre_logits else self.head(x).flatten(1)


def test_get_classifier_is_the_named_submodule():
    model = TinyNet()
    assert model.get_classifier() is model.fc
    conv_model = TinyConvHead()
    assert conv_model.get_classifier() is conv_model.head[1]


@pytest.mark.parametrize("bad", [-1, -3, True, 2.0, "5", None])  # 0 is allowed: no classifier (timm)
def test_reset_classifier_rejects_bad_counts_and_changes_nothing(bad):
    model = TinyNet(num_classes=4)
    old = model.fc
    with pytest.raises(ValueError, match="num_classes must be a non-negative integer"):
        model.reset_classifier(bad)
    assert model.fc is old and model.num_classes == 4


def test_reset_classifier_puts_a_fresh_linear_of_the_right_shape_in_place():
    model = TinyNet(num_classes=4)
    keys_before = list(model.state_dict())
    old = model.fc
    model.reset_classifier(9)
    new = model.get_classifier()
    assert new is model.fc and new is not old
    assert isinstance(new, nn.Linear) and (new.in_features, new.out_features) == (6, 9)
    assert model.num_classes == 9
    assert list(model.state_dict()) == keys_before  # same keys, same order
    assert model(torch.randn(2, 3, 5, 5)).shape == (2, 9)


def test_reset_classifier_replaces_a_layer_inside_a_sequential():
    model = TinyConvHead(num_classes=4)
    keys_before = list(model.state_dict())
    model.reset_classifier(2)
    conv = model.head[1]
    assert isinstance(conv, nn.Conv2d) and conv is model.get_classifier()
    assert conv.weight.shape == (2, 6, 1, 1) and conv.bias.shape == (2,)
    assert isinstance(model.head[0], nn.Dropout) and isinstance(model.head[2], nn.AdaptiveAvgPool2d)
    assert list(model.state_dict()) == keys_before
    assert model(torch.randn(2, 3, 5, 5)).shape == (2, 2)


def test_reset_classifier_keeps_device_and_dtype():
    model = TinyNet().double()
    model.reset_classifier(3)
    assert model.fc.weight.dtype == torch.float64
    with torch.device("meta"):
        meta_model = TinyConvHead()
    meta_model.reset_classifier(3)
    assert meta_model.head[1].weight.is_meta


def test_default_forward_head_is_mean_pool_then_classifier():
    model = TinyNet(num_classes=4).eval()
    feats = torch.randn(2, 6, 3, 5)
    pooled = feats.mean((2, 3))  # global average pooling, by hand
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), pooled)
    torch.testing.assert_close(model.forward_head(feats), pooled @ model.fc.weight.T + model.fc.bias)


def test_default_forward_head_applies_head_drop_before_pre_logits():
    # p=1 drops everything in training mode, so the features come out as zeros and
    # the logits are the bias; in eval mode the dropout is the identity.
    model = TinyNet(num_classes=4, drop=1.0)
    feats = torch.randn(2, 6, 3, 3)
    model.train()
    assert torch.equal(model.forward_head(feats, pre_logits=True), torch.zeros(2, 6))
    torch.testing.assert_close(model.forward_head(feats), model.fc.bias.expand(2, 4))
    model.eval()
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.mean((2, 3)))


@pytest.mark.parametrize("layer", [nn.Identity(), nn.Conv2d(4, 4, 1, groups=2), nn.BatchNorm1d(3)])
def test_fresh_class_layer_refuses_other_layers(layer):
    with pytest.raises(TypeError, match="cannot build a fresh class layer"):
        fresh_class_layer(layer, 3)


def test_fresh_class_layer_copies_the_conv_geometry():
    old = nn.Conv2d(8, 5, 3, stride=2, padding=1, bias=False)
    new = fresh_class_layer(old, 11)
    assert (new.in_channels, new.out_channels, new.kernel_size) == (8, 11, (3, 3))
    assert (new.stride, new.padding, new.bias) == ((2, 2), (1, 1), None)


@pytest.mark.parametrize("name", list_models())
def test_every_model_resets_its_named_classifier_in_place(name):
    with torch.device("meta"):
        model = create_model(name)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    classifier_keys = {n for n, m in model.named_modules() if m is model.get_classifier()}
    assert len(classifier_keys) == 1, "get_classifier must return a registered submodule"
    (prefix,) = classifier_keys
    model.reset_classifier(3)
    after = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(after) == list(shapes)  # no key added, dropped or moved
    assert model.num_classes == 3 and model.get_classifier() is model.get_submodule(prefix)
    assert all(t.is_meta for t in model.state_dict().values())  # the new layers stay on the model's device
    changed = {k for k in shapes if shapes[k] != after[k]}
    assert changed and all(k.startswith(prefix + ".") or "aux" in k.lower() for k in changed)
    assert all(after[k][0] == 3 for k in changed)  # one row per class: weight, bias (LeNet: RBF code)
