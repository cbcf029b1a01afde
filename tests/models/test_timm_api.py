"""The timm / torchvision surface, checked the same way for every registered model:
num_classes=0 and reset_classifier(0) (pooled features), feature_info /
forward_intermediates / features_only, pretrained_cfg, unknown builder arguments,
and check_input (non-tensors, dtypes, each side of the size check)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import UnknownArgumentError, UserError
from cnnlab.models.base import CnnModel, FeatureNet, InputSizeError, InputTypeError
from reference import build_on_meta, load_manifest, reference_names

ALL = cnnlab.list_models()
# The deepest nets: their meta-device feature trace alone takes seconds here.
SLOW = {"resnet1202", "preact_resnet1001", "nasnetalarge", "nasnet_cifar", "densenet_bc_250_24",
        "senet154", "inception_resnet_v2", "inception_v4", "densenet_bc_190_40", "nasnetamobile"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ALL]


def _small_input(name, batch=2):
    info = cnnlab.model_info(name)
    torch.manual_seed(0)
    return torch.randn(batch, info.input_size[0], info.min_input_size, info.min_input_size)


# -- num_classes=0 / reset_classifier(0) -------------------------------------------------

@pytest.mark.parametrize("name", PARAMS)
def test_num_classes_zero_gives_pooled_features_on_meta(name):
    model = build_on_meta(name, num_classes=0)
    assert model.num_classes == 0
    s = cnnlab.model_info(name).min_input_size
    c = cnnlab.model_info(name).input_size[0]
    x = torch.empty(2, c, s, s, device="meta")
    for mode in (True, False):  # no aux output either, in training mode
        out = model.train(mode)(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, model.num_features), mode
    # the classifier's parameters are gone (an nn.Identity took its place)
    assert isinstance(model.get_classifier(), nn.Identity)
    full = build_on_meta(name)
    classifier_params = sum(p.numel() for p in full.get_classifier().parameters())
    assert classifier_params > 0 or cnnlab.model_info(name).family == "lenet"  # LeNet-5's RBF code is a buffer
    dropped = sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in model.parameters())
    assert dropped >= classifier_params


# one small model per kind of head: linear, conv head (pre-activation), RBF / linear
# output, class-map conv, MLP-free CIFAR nets
@pytest.mark.parametrize("name", ["resnet20", "preact_resnet110", "lenet5", "lenet5_modern", "nin",
                                  "squeezenet1_1", "densenet_bc_100_12", "plain20"])
def test_reset_classifier_zero_returns_what_pre_logits_returns(name):
    model = cnnlab.create_model(name).eval()
    x = _small_input(name)
    with torch.no_grad():
        want = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        got = model(x)
    assert got.shape == (2, model.num_features)
    torch.testing.assert_close(got, want)
    model.reset_classifier(3)  # and back
    assert model(x).shape == (2, 3)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_num_classes_still_checked(bad):
    with pytest.raises(ValueError, match="num_classes"):
        cnnlab.create_model("resnet20", num_classes=bad)
    with pytest.raises(ValueError, match="num_classes"):
        cnnlab.create_model("resnet20").reset_classifier(bad)


# -- feature maps per stage -----------------------------------------------------------------

def _check_info(name, info):
    # at 224 or more, where valid (unpadded) convolutions barely move a map's size
    # (LeNet-5's 5x5 convs take 32 to 28 and 14 to 10)
    size = max(cnnlab.model_info(name).input_size[1], 224)
    assert len(info) >= 3, f"{name}: {info}"
    reductions = info.reduction()
    assert reductions == sorted(set(reductions)), "one stage per reduction, increasing"
    assert all(r & (r - 1) == 0 for r in reductions), "nominal reductions are powers of two"
    assert reductions[-1] >= 4
    assert info.channels()[-1] > 0 and [f["index"] for f in info] == list(range(len(info)))
    return size


@pytest.mark.parametrize("name", PARAMS)
def test_forward_intermediates_match_feature_info(name):
    model = build_on_meta(name).eval()
    info = model.feature_info
    size = _check_info(name, info)
    x = torch.empty(1, model.in_chans, size, size, device="meta")
    final, maps = model.forward_intermediates(x)
    assert final.shape == model.forward_features(x).shape
    assert len(maps) == len(info)
    for m, f in zip(maps, info):
        assert m.shape[1] == f["num_chs"], f
        # the map's size is the input's divided by the nominal reduction, within a factor 1.5
        ratio = size / m.shape[-1]
        assert abs(math.log2(ratio) - math.log2(f["reduction"])) <= math.log2(1.5), (f, m.shape)
    assert maps[-1].shape[1] in (model.num_features, final.shape[1])


@pytest.mark.parametrize("name", ["resnet18", "resnet20", "densenet_bc_100_12",
                                  "lenet5", "nin", "squeezenet1_1", "fractalnet20", "wrn16_8"])
def test_intermediates_are_the_real_maps_and_not_changed_in_place(name):
    """Against an independent capture: forward hooks that clone each stage module's output."""
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    x = _small_input(name, batch=1)
    clones = {}
    handles = [model.get_submodule(f["module"]).register_forward_hook(
        lambda m, a, out, k=f["module"]: clones.setdefault(k, out.clone())) for f in model.feature_info]
    with torch.no_grad():
        model.forward_features(x)
    for h in handles:
        h.remove()
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        only = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
    for m, f in zip(maps, model.feature_info):
        torch.testing.assert_close(m, clones[f["module"]])
    torch.testing.assert_close(final, model.forward_features(x))
    assert len(only) == 2
    torch.testing.assert_close(only[0], maps[0])
    torch.testing.assert_close(only[1], maps[-1])


def test_resnet50_feature_info_is_timms():
    # timm's resnet50 feature_info: act1 / layer1..4 at 2, 4, 8, 16, 32 (its act1 is our relu)
    info = build_on_meta("resnet50").feature_info
    assert info.module_name() == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert info.channels() == [64, 256, 512, 1024, 2048]
    assert info.reduction() == [2, 4, 8, 16, 32]


def test_inception_v3_reductions_are_nominal():
    # 299 -> 147 -> 71 -> 35 -> 17 -> 8: not exact powers of two, reported as 2 .. 32
    info = build_on_meta("inception_v3").feature_info
    assert info.module_name() == ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"]
    assert info.reduction() == [2, 4, 8, 16, 32]


def test_features_only_returns_the_maps():
    net = cnnlab.create_model("resnet18", features_only=True, out_indices=(1, 3))
    assert isinstance(net, FeatureNet)
    assert net.feature_info.channels() == [64, 256] and net.feature_info.reduction() == [4, 16]
    maps = net(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 16), (2, 256, 4, 4)]
    sum(m.sum() for m in maps).backward()  # trainable as a backbone
    assert net.model.layer3[0].conv1.weight.grad is not None
    # no classifier left, and the backbone's weights still load from a full model
    assert not any(k.startswith("model.fc") for k in net.state_dict())
    full = cnnlab.create_model("resnet18")
    missing, unexpected = net.model.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected == ["fc.weight", "fc.bias"]


def test_stop_early_skips_the_rest_of_the_network():
    model = cnnlab.create_model("resnet18").eval()
    assert len(model.feature_info) == 5  # (found by a pass of its own, before the hook below)
    calls = []
    model.layer4.register_forward_hook(lambda *a: calls.append("layer4"))
    model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0, 1], intermediates_only=True)
    assert calls == []
    final, maps = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0, 1], stop_early=True)
    assert calls == [] and final is maps[-1]
    model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0, 1])
    assert calls == ["layer4"]


def test_reset_classifier_zero_leaves_the_old_layer_alone():
    model = cnnlab.create_model("resnet20")
    head = model.get_classifier()
    model.reset_classifier(0)
    assert head.weight.device.type == "cpu" and head.weight.abs().sum() > 0
    model.reset_classifier(4)
    assert model.fc is not head and model.fc.weight.device.type == "cpu"
    assert model.fc.weight.shape == (4, 64) and torch.isfinite(model.fc.weight).all()


@pytest.mark.parametrize("bad", [[5], [-6], 6, [0.5], True])
def test_bad_feature_indices(bad):
    model = build_on_meta("resnet18")
    with pytest.raises((ValueError, TypeError), match="indices|index|stage"):
        model.forward_intermediates(torch.empty(1, 3, 64, 64, device="meta"), indices=bad)


def test_out_indices_without_features_only_is_refused():
    with pytest.raises(UserError, match="features_only"):
        cnnlab.create_model("resnet18", out_indices=(1,))


# -- pretrained_cfg ----------------------------------------------------------------------

def _convs_reading_the_input(model, size):
    """The Conv2d modules that receive the input tensor itself, seen by running the
    model: the first conv (FractalNet's first block has one per column)."""
    x = torch.empty(1, model.in_chans, size, size, device="meta")
    readers = []
    handles = [m.register_forward_pre_hook(lambda mod, a, n=n: readers.append(n) if a[0] is x else None)
               for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    model.eval()(x)
    for h in handles:
        h.remove()
    return readers


@pytest.mark.parametrize("name", PARAMS)
def test_pretrained_cfg(name):
    info = cnnlab.model_info(name)
    cfg = info.pretrained_cfg
    model = build_on_meta(name)
    assert model.pretrained_cfg == cfg
    assert cfg["input_size"] == info.input_size and cfg["num_classes"] == info.num_classes
    c = info.input_size[0]
    assert len(cfg["mean"]) == len(cfg["std"]) == c
    assert all(0 < s < 1 for s in cfg["std"]) and all(0 <= m <= 1 for m in cfg["mean"])
    assert 0.5 < cfg["crop_pct"] <= 1 and cfg["interpolation"] in ("bilinear", "bicubic")
    readers = _convs_reading_the_input(model, info.min_input_size)
    assert cfg["first_conv"] in readers, readers
    assert len(readers) == 1 or info.family == "fractalnet"
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert isinstance(model.get_submodule(cfg["first_conv"]), nn.Conv2d)


def test_pretrained_cfg_figures():
    # torchvision's ImageNet preprocessing: resize 256, crop 224 (0.875), bilinear
    cfg = cnnlab.model_info("resnet50").pretrained_cfg
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["first_conv"], cfg["classifier"]) == \
        (0.875, "bilinear", "conv1", "fc")
    # Google's Inception / NASNet weights take inputs in [-1, 1]
    for name in ("inception_v4", "inception_resnet_v2", "nasnetalarge"):
        cfg = cnnlab.model_info(name).pretrained_cfg
        assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5), name
    assert cnnlab.model_info("nasnetalarge").pretrained_cfg["input_size"] == (3, 331, 331)
    assert cnnlab.model_info("lenet5").pretrained_cfg["mean"] == (0.1307,)
    # a model built with other channels says so
    assert cnnlab.create_model("resnet20", in_chans=1).pretrained_cfg["input_size"] == (1, 32, 32)


# -- unknown builder arguments ------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_unknown_argument_is_reported_the_same_way(name):
    with pytest.raises(UnknownArgumentError) as exc:
        cnnlab.create_model(name, no_such_option=1)
    msg = str(exc.value)
    assert msg.startswith(f"{name}: unexpected argument(s) 'no_such_option'; it accepts: ")
    accepted = msg.split("it accepts: ")[1].split(", ")
    assert {"num_classes", "in_chans", "drop_rate", "features_only"} <= set(accepted)
    assert isinstance(exc.value, TypeError) and isinstance(exc.value, ValueError)


def test_fixed_arguments_are_refused_in_one_line():
    with pytest.raises(UserError, match="'layers' is fixed"):
        cnnlab.create_model("resnet50", layers=(1, 1, 1, 1))


# -- check_input --------------------------------------------------------------------------

@pytest.mark.parametrize("x, match", [
    ([[0.0]], "got list"),
    (3.0, "got float"),
    (__import__("numpy").zeros((1, 3, 32, 32), dtype="float32"), "got numpy.ndarray"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating-point tensor, got dtype torch.uint8"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.int64), "torch.int64"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.float64), "torch.float32 parameters but got a torch.float64"),
])
def test_check_input_refuses_non_tensors_and_wrong_dtypes(x, match):
    model = cnnlab.create_model("resnet20")
    with pytest.raises(InputTypeError, match=match) as exc:
        model(x)
    assert isinstance(exc.value, TypeError) and isinstance(exc.value, UserError)
    assert str(exc.value).startswith("resnet20 ")


def test_check_input_accepts_the_model_dtype():
    model = cnnlab.create_model("resnet20").double().eval()
    assert model(torch.zeros(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(InputTypeError, match="float64 parameters but got a torch.float32"):
        model(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("h, w, side", [(31, 32, "height"), (32, 31, "width"), (31, 31, "height")])
def test_size_check_looks_at_each_side(h, w, side):
    model = cnnlab.create_model("lenet5")  # smallest 32 x 32
    with pytest.raises(InputSizeError, match=f"at least 32x32 pixels, got {h}x{w} \\(the {side}"):
        model(torch.zeros(1, 1, h, w))
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


class _AnySize(CnnModel):
    """A 1x1 conv and a global pool: runs on any input, so only check_input can refuse one."""

    def __init__(self, smallest):
        super().__init__()
        self.num_classes, self.num_features, self.in_chans = 2, 4, 3
        self.min_input_size = smallest
        self.body = nn.Conv2d(3, 4, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward_features(self, x):
        return self.body(x)


@pytest.mark.parametrize("smallest", [1, 7, 8])
def test_size_check_at_the_exact_boundary(smallest):
    model = _AnySize(smallest)
    s = smallest
    for h, w in ((s, s), (s, s + 5), (s + 5, s), (3 * s, 2 * s)):  # at least s on each side: taken
        assert model(torch.zeros(1, 3, h, w)).shape == (1, 2)
    too_small = [(s - 1, s, "height"), (s, s - 1, "width"), (s - 1, s + 9, "height"), (s + 9, s - 1, "width"),
                 (s - 1, s - 1, "height")]
    for h, w, side in too_small:
        if h < 1 or w < 1:
            continue
        with pytest.raises(InputSizeError, match=f"at least {s}x{s} pixels, got {h}x{w} \\(the {side} is too small"):
            model(torch.zeros(1, 3, h, w))


def test_channel_count_message_names_the_inputs_channels():
    model = _AnySize(1)
    with pytest.raises(InputSizeError, match=r"expects 3 input channel\(s\), got 1 \(input shape \(2, 1, 9, 7\)\); "
                                             r"build it with in_chans=1 to change that"):
        model(torch.zeros(2, 1, 9, 7))


def test_a_model_without_parameters_takes_any_float_input():
    class NoWeights(CnnModel):
        num_classes, num_features, in_chans, classifier_name = 0, 3, 3, "fc"

        def __init__(self):
            super().__init__()
            self.min_input_size = 2
            self.global_pool, self.fc = nn.AdaptiveMaxPool2d(1), nn.Identity()

        def forward_features(self, x):
            return x

    model = NoWeights()
    assert next(model.parameters(), None) is None
    assert model(torch.ones(1, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(InputSizeError, match="at least 2x2"):
        model(torch.ones(1, 3, 2, 1))


def test_autocast_may_feed_another_dtype():
    model = _AnySize(1).eval()
    x = torch.zeros(1, 3, 4, 4, dtype=torch.bfloat16)
    with pytest.raises(InputTypeError, match="torch.float32 parameters but got a torch.bfloat16"):
        model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: the model casts per op
        assert model(x).shape == (1, 2)


def test_inception_v3_eval_takes_what_torchvision_takes():
    model = build_on_meta("inception_v3").eval()
    assert model(torch.empty(1, 3, 75, 75, device="meta")).shape == (1, 1000)
    assert model(torch.empty(1, 3, 75, 120, device="meta")).shape == (1, 1000)
    with pytest.raises(InputSizeError, match="at least 75x75"):
        model(torch.empty(1, 3, 75, 74, device="meta"))
    with pytest.raises(InputSizeError, match="at least 299x299"):
        model.train()(torch.empty(1, 3, 298, 299, device="meta"))


# -- regularization arguments: one naming in every family -----------------------------------

@pytest.mark.parametrize("name", PARAMS)
def test_drop_rate_is_head_dropout_everywhere(name):
    model = build_on_meta(name, drop_rate=0.3)
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert 0.3 in rates, f"{name}: no dropout with p=0.3 ({rates})"


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet110", "densenet_bc_100_12", "fractalnet20"])
def test_drop_rate_drops_the_classifier_input(name):
    # in training mode with p = 0.3, about 30% of the classifier's input entries are zeroed
    seen = []
    model = build_on_meta(name, drop_rate=0.3).to_empty(device="cpu").train()
    model.get_classifier().register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model.forward_head(torch.rand(64, model.num_features, 2, 2) + 0.5)
    zeros = float((seen[-1] == 0).float().mean())
    assert 0.2 < zeros < 0.4, zeros


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), float("inf"), "0.2", True])
@pytest.mark.parametrize("key", ["drop_rate", "drop_path_rate"])
def test_bad_regularization_rates_are_refused_the_same_way(key, bad):
    with pytest.raises(ValueError, match=f"resnet20: {key} must be a number in \\[0, 1\\)"):
        cnnlab.create_model("resnet20", **{key: bad})


def test_drop_path_rate_where_the_family_has_it():
    for name in ("resnet20", "resnet50", "nasnet_cifar", "preact_resnet110"):
        assert "drop_path_rate" in cnnlab.registry.accepted_arguments(name)
    with pytest.raises(UnknownArgumentError, match="'drop_path_rate'"):
        cnnlab.create_model("vgg11", drop_path_rate=0.1)


def test_densenet_names_follow_timm():
    net = build_on_meta("densenet_bc_100_12", drop_rate=0.2, proj_drop_rate=0.1)
    assert net.head_drop.p == 0.2
    assert {layer.drop_rate for layer in net.modules() if hasattr(layer, "drop_rate") and layer is not net} == {0.1}
