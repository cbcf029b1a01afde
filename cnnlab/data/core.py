"""Shared pieces of ``cnnlab.data``: the error type, dataset descriptions, the
in-memory dataset, the data directory and the seed mixing used everywhere.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["DataError", "DatasetInfo", "InMemoryDataset", "default_data_dir", "resolve_data_dir", "mix_seed",
           "stratified_holdout"]

DATA_ENV = "CNNLAB_DATA"


class DataError(ValueError):
    """Every data problem a user can cause or fix (bad name, missing file, bad option...)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, before (or after) loading it.

    ``mean`` and ``std`` are per channel on the 0-1 scale. ``kind`` says which models
    the dataset suits by default ("mnist", "cifar" or "imagenet"), matching
    ``ModelInfo.dataset``. ``classes`` is None when the names are only known after
    loading (an image folder).
    """

    name: str
    num_classes: int | None
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] | None
    kind: str
    downloads: bool
    description: str = ""
    num_train: int | None = None
    num_test: int | None = None
    download_bytes: int | None = None  # total size of the files fetched by `cnnlab download`
    source: str = ""  # where the data comes from (URL or package)

    def with_(self, **changes) -> "DatasetInfo":
        return replace(self, **changes)


def mix_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (stable across processes and
    Python versions, unlike ``hash``)."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded with ``mix_seed(*parts)``."""
    g = torch.Generator()
    g.manual_seed(mix_seed(*parts))
    return g


def stratified_holdout(labels: torch.Tensor, fraction: float, *seed: object, num_classes: int | None = None) -> torch.Tensor:
    """A boolean mask holding out ``round(fraction * n_c)`` seeded random samples of
    every class ``c`` (the same mask for the same labels, fraction and seed)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    held = torch.zeros(len(labels), dtype=torch.bool)
    g = generator(*seed)
    classes = num_classes if num_classes is not None else (int(labels.max()) + 1 if len(labels) else 0)
    for c in range(classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        held[idx[: round(fraction * len(idx))]] = True
    return held


def default_data_dir() -> Path:
    """``$CNNLAB_DATA`` if set, else ``$XDG_CACHE_HOME/cnnlab`` (``~/.cache/cnnlab``)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "cnnlab"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


@dataclass
class InMemoryDataset:
    """A small dataset held as tensors: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    info: DatasetInfo
    split: str = "train"
    _pca: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError("images must be a uint8 tensor of shape (N, C, H, W)")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dim() != 1:
            raise DataError("labels must be a 1-D tensor")
        if self.labels.dtype != torch.int64:
            self.labels = self.labels.long()
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"InMemoryDataset({self.info.name!r}, split={self.split!r}, {n} images {c}x{h}x{w}, {len(self.classes)} classes)"

    def subset(self, indices: Sequence[int] | torch.Tensor) -> "InMemoryDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.dim() != 1:
            raise DataError("subset indices must be a 1-D sequence of integers")
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise DataError(f"subset index out of range for a dataset of {len(self)} samples")
        return InMemoryDataset(self.images[idx], self.labels[idx], list(self.classes), self.info, self.split)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=len(self.classes))

    def pca(self, max_pixels: int = 200_000) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (C,) and eigenvectors (C, C, columns) of the per-pixel channel
        covariance on the 0-1 scale, from a fixed sample of pixels (AlexNet's lighting noise)."""
        if self._pca is None:
            n, c, h, w = self.images.shape
            g = generator("pca", self.info.name, n)
            count = min(max_pixels, n * h * w)
            flat = self.images.permute(0, 2, 3, 1).reshape(-1, c)
            pick = torch.randint(0, flat.shape[0], (count,), generator=g)
            pixels = flat[pick].double() / 255.0
            cov = torch.cov(pixels.T).reshape(c, c)
            eigval, eigvec = torch.linalg.eigh(cov)
            self._pca = (eigval.clamp_min(0).float(), eigvec.float())
        return self._pca
