"""The weights' own evaluation preprocessing, and ImageNet-style folders to evaluate on.

:func:`eval_transform` does what the publishers' evaluation presets do (torchvision's
``ImageClassification``, timm's ``transforms_imagenet_eval``): resize the shorter side
to ``resize`` with the given interpolation (Pillow's, antialiased), centre-crop
``crop`` x ``crop``, scale to [0, 1], normalize with mean/std.

:func:`folder_samples` reads an ImageNet-style folder (one subfolder per class, named by
WordNet id such as ``n01440764`` or by the class name) and labels each image with the
*weights'* class index, so a folder holding only some of the 1000 classes is scored
correctly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cnnlab.weights.spec import Preprocessing, Weights, WeightsError, class_names, imagenet_wnids

__all__ = ["eval_transform", "load_image", "folder_samples", "ImageFiles"]

_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def _resample(name: str):
    from PIL import Image

    return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[name]


def eval_transform(img, pre: Preprocessing) -> torch.Tensor:
    """A Pillow image -> normalized float32 (3, crop, crop)."""
    img = img.convert("RGB")
    w, h = img.size
    if min(w, h) != pre.resize:
        # torchvision's rule: the shorter side becomes `resize`, the longer keeps the aspect (truncated)
        if w <= h:
            size = (pre.resize, int(pre.resize * h / w))
        else:
            size = (int(pre.resize * w / h), pre.resize)
        img = img.resize(size, _resample(pre.interpolation))
    w, h = img.size
    if w < pre.crop or h < pre.crop:
        raise WeightsError(f"an image resized to {w}x{h} is smaller than the {pre.crop}x{pre.crop} crop")
    left = int(round((w - pre.crop) / 2.0))
    top = int(round((h - pre.crop) / 2.0))
    img = img.crop((left, top, left + pre.crop, top + pre.crop))
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)
    return (x - mean) / std


def load_image(path: str | os.PathLike, pre: Preprocessing) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return eval_transform(img, pre)
    except FileNotFoundError:
        raise FileNotFoundError(f"no image at {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not an image Pillow can read: {exc}") from None


def folder_samples(root: str | os.PathLike, w: Weights) -> list[tuple[str, int]]:
    """(image path, weights' class index) for every image under ``root``'s class folders
    (or under ``root/val`` when it exists)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise WeightsError(f"image folder {root} does not exist or is not a folder")
    if (root / "val").is_dir():
        root = root / "val"
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise WeightsError(f"{root} has no class subfolders (ImageNet val: one folder per class, e.g. n01440764/)")
    index: dict[str, int] = {}
    if w.classes == "imagenet1k":
        index.update({wnid: i for i, wnid in enumerate(imagenet_wnids())})
        index.update({name.lower(): i for i, name in enumerate(class_names(w))})
    else:
        index.update({str(i): i for i in range(w.num_classes)})
    unknown = [d.name for d in folders if d.name not in index and d.name.lower() not in index]
    if unknown:
        raise WeightsError(f"{root}: class folder(s) {', '.join(unknown[:5])} are not classes of {w.name} "
                           "(name them by WordNet id, e.g. n01440764, or by class name, e.g. 'tench')")
    samples = []
    for d in folders:
        label = index.get(d.name, index.get(d.name.lower()))
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
            samples += [(os.path.join(dirpath, f), label) for f in sorted(filenames) if f.lower().endswith(_EXTENSIONS)]
    if not samples:
        raise WeightsError(f"{root}: no images ({', '.join(_EXTENSIONS)}) in its class folders")
    return samples


class ImageFiles(torch.utils.data.Dataset):
    """(normalized image, label) for a list of (path, label), with ``pre``'s preprocessing."""

    def __init__(self, samples: Sequence[tuple[str, int]], pre: Preprocessing):
        self.samples = list(samples)
        self.pre = pre

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return load_image(path, self.pre), label
