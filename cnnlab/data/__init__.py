"""Datasets, downloads and batched on-device augmentation for cnnlab.

    >>> from cnnlab.data import load_dataset, make_loader, AugmentConfig
    >>> train = load_dataset("digits", "train")           # embedded, no download
    >>> loader = make_loader(train, batch_size=64, train=True, input_size=(1, 32, 32),
    ...                      augment=AugmentConfig(crop_padding=2))
    >>> for x, y in loader: ...                           # x: (64, 1, 32, 32) float32, normalised

Datasets: ``digits`` (scikit-learn's 8x8 handwritten digits), ``mnist``,
``fashion_mnist``, ``cifar10``, ``cifar100`` (downloaded with checksums, resumable),
``imagefolder`` (class subfolders, decoded by worker processes) and ``shapes``
(seeded procedural shapes, any size). See docs/data.md.
"""
from cnnlab.data.augment import AugmentConfig
from cnnlab.data.core import DataError, DatasetInfo, InMemoryDataset, default_data_dir
from cnnlab.data.datasets import (dataset_files, dataset_info, download_dataset, has_split, is_present, list_datasets,
                                  load_dataset)
from cnnlab.data.loader import Loader, make_loader

__all__ = [
    "AugmentConfig",
    "DataError",
    "DatasetInfo",
    "InMemoryDataset",
    "Loader",
    "dataset_files",
    "dataset_info",
    "default_data_dir",
    "download_dataset",
    "has_split",
    "is_present",
    "list_datasets",
    "load_dataset",
    "make_loader",
]
