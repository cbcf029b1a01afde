"""Published pretrained weights for the cnnlab models that have torchvision's or timm's layout.

    >>> import cnnlab
    >>> model = cnnlab.create_model("resnet50", pretrained=True)            # DEFAULT: IMAGENET1K_V2
    >>> model = cnnlab.create_model("resnet50", pretrained="IMAGENET1K_V1")
    >>> tuner = cnnlab.create_model("resnet18", pretrained=True, num_classes=5)  # new classifier
    >>> from cnnlab.weights import get_weights
    >>> w = get_weights("resnet50")            # URL, checksum, preprocessing, published accuracy
    >>> w.preprocessing.describe(), w.top1, w.accuracy_source

The registry (:mod:`cnnlab.weights.catalog`) is data: every URL, checksum, size,
licence, preprocessing and accuracy names where it comes from. Files are downloaded
once through :mod:`cnnlab.data.download` (resumable, checksummed, atomic) into
``$CNNLAB_HOME/weights`` or ``~/.cache/cnnlab/weights`` and re-verified cheaply before
each use (:mod:`cnnlab.weights.store`). See docs/weights.md.
"""
from cnnlab.weights.load import build_pretrained, freeze_backbone, load_weights, read_state_dict
from cnnlab.weights.spec import (
    Preprocessing,
    Weights,
    WeightsError,
    get_weights,
    imagenet_classes,
    imagenet_wnids,
    list_weights,
    models_with_weights,
    register_weights,
    weight_tags,
)
from cnnlab.weights.store import cache_dir, cached_path, fetch_weights, is_cached, verify_cached

__all__ = [
    "Preprocessing",
    "Weights",
    "WeightsError",
    "build_pretrained",
    "cache_dir",
    "cached_path",
    "fetch_weights",
    "freeze_backbone",
    "get_weights",
    "imagenet_classes",
    "imagenet_wnids",
    "is_cached",
    "list_weights",
    "load_weights",
    "models_with_weights",
    "read_state_dict",
    "register_weights",
    "verify_cached",
    "weight_tags",
]
