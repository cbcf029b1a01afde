"""What a published checkpoint is: :class:`Weights`, its :class:`Preprocessing`, and the
weights registry (model name -> tags -> Weights).

The entries themselves are data, in :mod:`cnnlab.weights.catalog`; each says where its
URL, checksum, accuracy and preprocessing come from.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Preprocessing",
    "Weights",
    "WeightsError",
    "register_weights",
    "get_weights",
    "list_weights",
    "weight_tags",
    "models_with_weights",
    "imagenet_classes",
    "imagenet_wnids",
    "hash_prefix_of",
]

FORMATS = ("pickle", "safetensors")
INTERPOLATIONS = ("bilinear", "bicubic")

# torch.hub names a checkpoint NAME-<first hex digits of its SHA-256>.EXT and checks that
# prefix after a download (torch/hub.py, HASH_REGEX = r"-([a-f0-9]*)\."); the first match wins.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


class WeightsError(ValueError):
    """A pretrained-weights problem a user can cause or fix: unknown tag, no weights for a
    model, a download that failed, a file that does not match, a file for another network."""


def hash_prefix_of(file_name: str) -> str | None:
    """The SHA-256 prefix a torch.hub-style file name carries, as torch.hub reads it."""
    m = _HASH_IN_NAME.search(file_name)
    return m.group(1) if m and m.group(1) else None


@dataclass(frozen=True)
class Preprocessing:
    """How the publisher evaluated the weights: resize the shorter side to ``resize``
    with ``interpolation``, take the centre ``crop`` x ``crop``, scale to [0, 1],
    subtract ``mean`` and divide by ``std`` (per RGB channel)."""

    resize: int
    crop: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str = ""
    note: str = ""

    @property
    def crop_pct(self) -> float:
        return self.crop / self.resize

    def describe(self) -> str:
        mean = ", ".join(f"{m:g}" for m in self.mean)
        std = ", ".join(f"{s:g}" for s in self.std)
        return (f"resize {self.resize} ({self.interpolation}), centre crop {self.crop}, "
                f"mean ({mean}), std ({std})")


@dataclass(frozen=True)
class Weights:
    """One published checkpoint of one cnnlab model.

    ``sha256`` is the full SHA-256 of the file where the publisher gives one (Hugging
    Face's LFS metadata); ``sha256_prefix`` the hex digits a torch.hub-style file name
    carries, checked as torch.hub checks them (the file's SHA-256 must start with them).
    ``size_bytes`` is exact where known; ``size_mb`` the publisher's rounded size in MB
    (10^6 bytes). Accuracies are percentages on ImageNet-1k val with ``preprocessing``.
    """

    model: str
    tag: str
    url: str
    format: str
    preprocessing: Preprocessing
    license: str
    publisher: str  # "torchvision" or "timm"
    publisher_name: str  # the publisher's own name for these weights
    source: str  # where the URL and checksum come from
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_bytes: int | None = None
    size_mb: float | None = None
    num_classes: int = 1000
    classes: str = "imagenet1k"
    top1: float | None = None
    top5: float | None = None
    accuracy_source: str = ""
    license_source: str = ""
    recipe: str = ""
    default: bool = False
    dtype: str = "float32"  # of the tensors in the file; load_state_dict converts to the model's dtype
    # a key rewrite the file needs before it fits the model (see cnnlab.weights.load.KEY_MAPS)
    key_map: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"{self.model}.{self.tag}: format must be one of {FORMATS}, got {self.format!r}")
        if not (self.sha256 or self.sha256_prefix):
            raise ValueError(f"{self.model}.{self.tag}: weights need a sha256 or a sha256_prefix")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.model}.{self.tag}: sha256 must be 64 lowercase hex digits")
        if self.sha256_prefix is not None and not re.fullmatch(r"[0-9a-f]{6,64}", self.sha256_prefix):
            raise ValueError(f"{self.model}.{self.tag}: sha256_prefix must be 6-64 lowercase hex digits")
        if not re.fullmatch(r"[A-Z0-9_]+", self.tag) or self.tag == "DEFAULT":
            raise ValueError(f"{self.model}: tag must be upper-case letters, digits and _ (not DEFAULT), got {self.tag!r}")

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def file_name(self) -> str:
        """The name of the file in the cache: the URL's last part, prefixed with the
        repository for Hugging Face files (which are all called model.safetensors)."""
        parts = self.url.split("/")
        base = parts[-1]
        if "huggingface.co" in self.url and "resolve" in parts:
            repo = "--".join(parts[3:parts.index("resolve")])
            return f"{repo}--{base}"
        return base

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.preprocessing.crop, self.preprocessing.crop)

    def accuracy_text(self) -> str:
        if self.top1 is None:
            return ""
        return f"{self.top1:.2f}" + (f" / {self.top5:.2f}" if self.top5 is not None else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["file_name"] = self.file_name
        d["input_size"] = list(self.input_size)
        d["preprocessing"]["mean"] = list(self.preprocessing.mean)
        d["preprocessing"]["std"] = list(self.preprocessing.std)
        return d


_REGISTRY: dict[str, dict[str, Weights]] = {}


def register_weights(w: Weights, *, replace: bool = False) -> Weights:
    """Add ``w`` to the weights registry (``replace=True`` to overwrite an entry)."""
    tags = _REGISTRY.setdefault(w.model, {})
    if w.tag in tags and not replace:
        raise ValueError(f"weights {w.name} are registered twice")
    if w.default and not replace and any(o.default for o in tags.values()):
        raise ValueError(f"{w.model} has two DEFAULT weights")
    tags[w.tag] = w
    return w


def _ensure_loaded() -> None:
    import cnnlab.weights.catalog  # noqa: F401  (registers the published weights)


def models_with_weights() -> list[str]:
    _ensure_loaded()
    return sorted(m for m, tags in _REGISTRY.items() if tags)


def weight_tags(model: str) -> list[str]:
    """The tags of ``model``'s weights, default first."""
    _ensure_loaded()
    tags = _REGISTRY.get(model, {})
    return sorted(tags, key=lambda t: (not tags[t].default, t))


def get_weights(model: str, tag: str | bool | None = None) -> Weights:
    """The weights of ``model`` called ``tag`` (``None``, ``True`` or "DEFAULT": its
    default). Tags are case-insensitive. Raises :class:`WeightsError` saying what exists."""
    _ensure_loaded()
    tags = _REGISTRY.get(model)
    if not tags:
        from cnnlab.registry import is_model

        if not is_model(model):
            from cnnlab.registry import _unknown

            raise _unknown(model)
        have = models_with_weights()
        raise WeightsError(
            f"{model} has no published pretrained weights (no torchvision or timm checkpoint has its layout); "
            f"train it with `cnnlab train {model}`. Models with weights: {', '.join(have)}")
    if tag is None or tag is True or (isinstance(tag, str) and tag.upper() == "DEFAULT"):
        for w in tags.values():
            if w.default:
                return w
        return tags[sorted(tags)[0]]
    if not isinstance(tag, str):
        raise WeightsError(f"pretrained must be True, False or a tag name, got {tag!r}")
    key = tag.upper()
    if key not in tags:
        raise WeightsError(f"{model} has no weights tagged {tag!r}; its tags: DEFAULT, {', '.join(weight_tags(model))}")
    return tags[key]


def list_weights(pattern: str = "*") -> list[Weights]:
    """Every registered checkpoint of the models matching ``pattern``, by model then tag."""
    _ensure_loaded()
    out = []
    for model in sorted(_REGISTRY):
        if fnmatch.fnmatchcase(model, pattern):
            out += [_REGISTRY[model][t] for t in weight_tags(model)]
    return out


def closest_models(name: str) -> list[str]:
    return difflib.get_close_matches(name, models_with_weights(), n=3, cutoff=0.5)


@functools.lru_cache(maxsize=None)
def _imagenet_table() -> tuple[tuple[str, str], ...]:
    path = Path(__file__).with_name("imagenet1k_classes.tsv")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("index\t"):
            continue
        index, wnid, name = line.split("\t")
        if int(index) != len(rows):
            raise RuntimeError(f"{path} is corrupt: row {len(rows)} has index {index}")
        rows.append((wnid, name))
    return tuple(rows)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in the checkpoints' logit order."""
    return [name for _, name in _imagenet_table()]


def imagenet_wnids() -> list[str]:
    """The 1000 WordNet ids (ImageNet's folder names), in the checkpoints' logit order."""
    return [wnid for wnid, _ in _imagenet_table()]


def class_names(w: Weights) -> list[str]:
    if w.classes == "imagenet1k":
        return imagenet_classes()
    return [str(i) for i in range(w.num_classes)]
