"""Loaders: batches of normalised float images on the training device.

Order and augmentation are pure functions of ``(seed, epoch, rank)``:

* the permutation of the whole dataset is drawn from ``(seed, epoch)`` (the same on
  every rank); rank ``r`` of ``world_size`` takes positions ``r, r + W, r + 2W, ...``;
* in training every shard has ``len(dataset) // world_size`` samples (the few left
  over change from epoch to epoch), so shards are disjoint and equal; in evaluation
  the shards cover the whole dataset exactly once (sizes differ by at most one) and
  every rank still yields the same number of batches (needed by collective ops);
* augmentation parameters are drawn from a generator seeded with
  ``(seed, epoch, rank)``, batch after batch, on the CPU, so CPU and GPU runs see the
  same crops and flips.

Resuming at an epoch boundary with ``set_epoch(e)`` therefore reproduces a run.
"""
from __future__ import annotations

import math
import os
from typing import Iterator

import torch

from cnnlab.data.augment import AugmentConfig, BatchPipeline, adapt_size, size_plan
from cnnlab.data.core import DataError, InMemoryDataset, generator

__all__ = ["make_loader", "Loader", "InMemoryLoader", "shard_indices"]

PREADAPT_BYTES = 1 << 30  # in-memory datasets resized once up front when the result fits this


def shard_indices(n: int, *, shuffle: bool, seed: int, epoch: int, rank: int, world_size: int, equal: bool) -> torch.Tensor:
    """This rank's sample indices for one epoch (see the module docstring)."""
    order = torch.randperm(n, generator=generator("order", seed, epoch)) if shuffle else torch.arange(n)
    if equal:
        order = order[: (n // world_size) * world_size]
    return order[rank::world_size]


def _split_batches(idx: torch.Tensor, batch_size: int, drop_last: bool, num_batches: int) -> list[torch.Tensor]:
    """Cut ``idx`` into ``num_batches`` batches of ``batch_size`` (the last may be short).
    A shard one sample short of the others may need one more cut to keep the count."""
    if drop_last:
        return list(idx[: num_batches * batch_size].split(batch_size))
    batches = list(idx.split(batch_size))
    while len(batches) < num_batches and batches and len(batches[-1]) > 1:
        last = batches.pop()
        batches += [last[:-1], last[-1:]]
    return batches


class Loader:
    """Common part of the loaders: sharding, epochs, batch counts, the pipeline."""

    def __init__(self, n, *, batch_size, train, device, seed, rank, world_size, drop_last):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(world_size, int) or world_size < 1:
            raise DataError(f"world_size must be a positive integer, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise DataError(f"rank must be in [0, {world_size}), got {rank!r}")
        if n == 0:
            raise DataError("the dataset is empty")
        if n < world_size:
            raise DataError(f"{n} samples cannot be shared among {world_size} ranks")
        self.n, self.batch_size, self.train = n, batch_size, bool(train)
        self.device = torch.device(device)
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.epoch = 0
        per_rank = n // world_size if self.train else math.ceil(n / world_size)
        if drop_last is None:
            drop_last = self.train and per_rank >= batch_size
        if drop_last and per_rank < batch_size:
            raise DataError(f"drop_last with batch_size {batch_size} leaves no batch: each rank has only {per_rank} samples")
        self.drop_last = bool(drop_last)
        if self.drop_last:
            per_rank = n // world_size  # equal shards, whole batches only
        self._batches = per_rank // batch_size if self.drop_last else math.ceil(per_rank / batch_size)
        self._equal = self.train or self.drop_last

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration uses."""
        if not isinstance(epoch, int) or epoch < 0:
            raise DataError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self._batches

    def indices(self, epoch: int | None = None) -> list[torch.Tensor]:
        """The batches of sample indices this rank yields in ``epoch`` (default: current)."""
        e = self.epoch if epoch is None else epoch
        idx = shard_indices(self.n, shuffle=self.train, seed=self.seed, epoch=e, rank=self.rank,
                            world_size=self.world_size, equal=self._equal)
        return _split_batches(idx, self.batch_size, self.drop_last, self._batches)

    @property
    def num_samples(self) -> int:
        """Samples this rank yields per epoch."""
        return sum(len(b) for b in self.indices(0))

    def _aug_generator(self) -> torch.Generator:
        return generator("augment", self.seed, self.epoch, self.rank)


class InMemoryLoader(Loader):
    """Batches from an :class:`InMemoryDataset` held (as uint8) on the device."""

    def __init__(self, dataset: InMemoryDataset, *, batch_size, train, device, input_size, augment, seed, rank,
                 world_size, drop_last, resize="auto"):
        super().__init__(len(dataset), batch_size=batch_size, train=train, device=device, seed=seed, rank=rank,
                         world_size=world_size, drop_last=drop_last)
        self.dataset = dataset
        info = dataset.info
        native = tuple(dataset.images.shape[1:])
        self.input_size = _input_size(input_size, native)
        pca = dataset.pca() if (train and augment is not None and augment.pca_lighting) else None
        images = dataset.images
        rrc = train and augment is not None and augment.random_resized_crop
        plan = size_plan(native[1:], self.input_size[1:], resize)
        if plan != "none" and not rrc and len(images) * native[0] * math.prod(self.input_size[1:]) <= PREADAPT_BYTES:
            # Resizing/padding is deterministic: do it once, not every batch (stored as
            # uint8 after rounding, as a resize of PIL images would be).
            images = _adapt_all(images, self.input_size[1:], plan, self.device)
            native = (native[0], *self.input_size[1:])
        self.pipeline = BatchPipeline(native, self.input_size, info.mean, info.std, augment, self.device, resize, pca)
        self.images = images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.classes = list(dataset.classes)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._aug_generator()
        for idx in self.indices():
            idx = idx.to(self.device)
            x = self.images.index_select(0, idx)
            y = self.labels.index_select(0, idx)
            yield self.pipeline(x, self.train, g), y


def _adapt_all(images: torch.Tensor, size, plan: str, device: torch.device, chunk: int = 2048) -> torch.Tensor:
    out = torch.empty(len(images), images.shape[1], *size, dtype=torch.uint8, device=device)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(device)
        x = adapt_size(x.float() if plan == "resize" else x, size, plan)
        out[i:i + chunk] = x.round().clamp_(0, 255).to(torch.uint8) if x.is_floating_point() else x
    return out


def _input_size(input_size, native: tuple[int, int, int]) -> tuple[int, int, int]:
    if input_size is None:
        return tuple(native)
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise DataError(f"input_size must be the model's (C, H, W), got {input_size!r}")
    return size


def make_loader(dataset, *, batch_size: int, train: bool, device="cpu", input_size=None, augment: AugmentConfig | None = None,
                seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool | None = None,
                num_workers: int | None = None, resize: str = "auto"):
    """A loader yielding ``(x, y)``: x float32 (N, C, H, W) normalised on ``device``,
    y int64 (N,) on ``device``.

    ``input_size`` is the model's (C, H, W): images are padded or resized to H x W
    (``resize``: "auto" pads when the model's input is at most a quarter larger --
    MNIST into LeNet-5 -- and resizes otherwise; "pad" or "resize" force one) and
    channels adapted (1 -> 3 repeat, 3 -> 1 luminance), else a DataError. ``augment``
    applies only when ``train``. ``drop_last`` defaults to ``train`` (when at least
    one full batch exists). ``num_workers`` matters only for image folders (decoding
    processes; default: the CPU count, at most 8).
    """
    if augment is not None and not isinstance(augment, AugmentConfig):
        if isinstance(augment, dict):
            augment = AugmentConfig.from_dict(augment)
        else:
            raise DataError(f"augment must be an AugmentConfig, a dict or None, got {type(augment).__name__}")
    common = dict(batch_size=batch_size, train=train, device=device, input_size=input_size, augment=augment,
                  seed=seed, rank=rank, world_size=world_size, drop_last=drop_last, resize=resize)
    if isinstance(dataset, InMemoryDataset):
        return InMemoryLoader(dataset, **common)
    from cnnlab.data.folder import FolderDataset, FolderLoader

    if isinstance(dataset, FolderDataset):
        if num_workers is None:
            num_workers = min(8, os.cpu_count() or 1)
        return FolderLoader(dataset, num_workers=num_workers, **common)
    raise DataError(f"make_loader takes a dataset from load_dataset, got {type(dataset).__name__}")
