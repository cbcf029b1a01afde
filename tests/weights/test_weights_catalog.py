"""Every registry entry checked without the network: against the reference manifests
(tests/reference/, the torchvision/timm layouts), against itself (URL, hash, format,
sizes), and the ImageNet class file against facts written here by hand."""
import json
import re
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.registry import list_models, model_info
from cnnlab.weights import WeightsError, get_weights, imagenet_classes, imagenet_wnids, list_weights
from cnnlab.weights.load import KEY_MAPS
from cnnlab.weights.spec import models_with_weights, weight_tags

REFERENCE = Path(__file__).parents[1] / "reference"
MANIFESTS = {p.stem: json.loads(p.read_text()) for p in REFERENCE.glob("*.json")}
ALL = list_weights()


def test_weights_exist_exactly_for_published_reference_models():
    with_weights = set(models_with_weights())
    # only models whose state_dict is torchvision's or timm's can take their checkpoints
    assert with_weights <= set(MANIFESTS)
    # every reference model has weights except resnet200 (timm publishes 'resnet200.untrained' only)
    assert set(MANIFESTS) - with_weights == {"resnet200"}
    assert len(with_weights) == 34


@pytest.mark.parametrize("w", ALL, ids=lambda w: w.name)
def test_entry_agrees_with_its_model(w):
    ref = MANIFESTS[w.model]
    info = model_info(w.model)
    assert info.layout == ref["source"] == w.publisher
    assert w.num_classes == ref["num_classes"] == info.num_classes
    assert w.input_size == (3, ref["input_size"], ref["input_size"]) == tuple(info.input_size)
    if w.classes == "imagenet1k":
        assert w.num_classes == len(imagenet_classes())
    if w.size_mb is not None:
        # a state_dict: 4 (float32) or 2 (float16) bytes per parameter, plus buffers and a small header
        params_mb = {"float32": 4, "float16": 2}[w.dtype] * ref["num_params"] / 1e6
        assert params_mb - 0.5 <= w.size_mb <= params_mb * 1.02 + 0.5, (w.size_mb, params_mb)  # sizes are rounded


@pytest.mark.parametrize("w", ALL, ids=lambda w: w.name)
def test_entry_is_consistent_with_itself(w):
    name = w.url.rsplit("/", 1)[1]
    assert w.url.startswith("https://")
    if w.sha256_prefix:
        # torch.hub's rule: the first "-<hex>." in the file name is the SHA-256 prefix it checks
        m = re.search(r"-([0-9a-f]+)\.", name)
        assert m and m.group(1) == w.sha256_prefix and len(w.sha256_prefix) == 8
    if w.sha256:
        assert re.fullmatch(r"[0-9a-f]{64}", w.sha256)
    assert w.format == ("safetensors" if name.endswith(".safetensors") else "pickle")
    if w.format == "pickle":
        assert name.endswith(".pth")
    assert w.file_name.endswith(name) and "/" not in w.file_name
    p = w.preprocessing
    assert p.interpolation in ("bilinear", "bicubic")
    assert p.crop <= p.resize <= p.crop * 1.25
    assert len(p.mean) == len(p.std) == 3 and all(0 < v <= 1 for v in (*p.mean, *p.std))
    assert p.source
    assert 0 < w.top1 < w.top5 < 100
    assert w.accuracy_source and w.source and w.license and w.license_source and w.publisher_name


def test_file_names_in_the_cache_do_not_collide():
    names = [w.file_name for w in ALL]
    assert len(names) == len(set(names))


def test_each_model_has_one_default_and_tags_resolve():
    for model in models_with_weights():
        tags = weight_tags(model)
        defaults = [t for t in tags if get_weights(model, t).default]
        assert len(defaults) == 1, model
        assert get_weights(model).tag == get_weights(model, "DEFAULT").tag == get_weights(model, True).tag == defaults[0]
    # torchvision's DEFAULTs for the models with two generations of weights are V2
    for model in ("resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"):
        assert get_weights(model).tag == "IMAGENET1K_V2"
    assert get_weights("resnet50", "imagenet1k_v1").url.endswith("resnet50-0676ba61.pth")  # case-insensitive


def test_known_facts_of_a_few_entries():
    w = get_weights("resnet50", "IMAGENET1K_V2")
    assert (w.top1, w.top5, w.preprocessing.resize, w.preprocessing.crop) == (80.858, 95.434, 232, 224)
    w = get_weights("inception_v3")
    assert (w.preprocessing.resize, w.preprocessing.crop) == (342, 299)
    # timm's eval resize is floor(input / crop_pct): 299 / 0.8975 = 333.1
    assert get_weights("inception_resnet_v2").preprocessing.resize == 333
    assert get_weights("nasnetalarge").preprocessing.resize == 363  # 331 / 0.911 = 363.3


def test_models_without_weights_say_so_and_list_those_with():
    with pytest.raises(WeightsError, match="lenet5 has no published pretrained weights") as exc:
        cnnlab.create_model("lenet5", pretrained=True)
    assert "resnet50" in str(exc.value) and "vgg16" in str(exc.value)
    with pytest.raises(WeightsError, match="no weights tagged 'V7'.*IMAGENET1K_V1"):
        get_weights("resnet50", "V7")
    with pytest.raises(cnnlab.UnknownModelError):
        get_weights("resnet5O")
    # every lecture-only model refuses, none is silently random
    for name in ("alexnet_paper", "resnet20", "googlenet_paper", "nin_cifar10"):
        if name in list_models():
            with pytest.raises(WeightsError):
                get_weights(name)


def test_imagenet_class_file():
    names, wnids = imagenet_classes(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000
    assert len(set(names)) == 1000 and len(set(wnids)) == 1000
    assert wnids == sorted(wnids) and all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    # ILSVRC-2012 facts: class 0 is the tench (n01440764), 1 the goldfish, 999 toilet tissue (n15075141)
    assert (wnids[0], names[0]) == ("n01440764", "tench")
    assert names[1] == "goldfish" and (wnids[999], names[999]) == ("n15075141", "toilet tissue")


def test_torchvision_densenet_key_map():
    state = {"features.denseblock1.denselayer1.norm.1.weight": torch.zeros(1),
             "features.denseblock1.denselayer12.conv.2.weight": torch.zeros(1),
             "features.norm5.running_mean": torch.zeros(1)}
    out = KEY_MAPS["torchvision_densenet"](state)
    assert set(out) == {"features.denseblock1.denselayer1.norm1.weight",
                        "features.denseblock1.denselayer12.conv2.weight", "features.norm5.running_mean"}
    assert get_weights("densenet121").key_map == "torchvision_densenet"
