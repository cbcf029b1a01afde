"""``imagefolder``: a folder of class subfolders, decoded with Pillow by worker processes.

Layout (ImageNet's, or your own photos)::

    ROOT/train/<class>/*.jpg    ROOT/val/<class>/*.jpg  (or test/, validation/)
    ROOT/<class>/*.jpg          (no split folders: a seeded, stratified 10% is "test")

Workers decode each image, convert it to RGB and bring it to the loader's size:
in training with ``random_resized_crop`` they cut an Inception-style random box
(seeded by ``(seed, epoch, sample)``) and resize it; otherwise they resize the
shorter side and take the centre (evaluation resizes to ``size / 0.875`` first, as
in the ResNet and Inception evaluations: 256 -> 224). Flip, padding crop, PCA
lighting, normalisation and Cutout then run batched on the device as for in-memory
datasets.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from cnnlab.data.augment import BatchPipeline, rrc_fallback
from cnnlab.data.core import DataError, DatasetInfo, generator, mix_seed
from cnnlab.data.loader import Loader, _input_size

__all__ = ["FolderDataset", "FolderLoader", "load_image_folder", "IMAGE_EXTENSIONS", "decode_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
HOLDOUT = 0.1  # test fraction when the folder has no split subfolders
EVAL_CROP = 0.875


class FolderDataset:
    """Image paths and labels; images are decoded on demand (in loader workers)."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: list[str], info: DatasetInfo, split: str, root: str):
        self.samples = list(samples)
        self.classes = list(classes)
        self.info = info
        self.split = split
        self.root = root

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"FolderDataset({self.root!r}, split={self.split!r}, {len(self)} images, {len(self.classes)} classes)"

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.long)

    def subset(self, indices) -> "FolderDataset":
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        try:
            picked = [self.samples[i] for i in idx]
        except IndexError:
            raise DataError(f"subset index out of range for a dataset of {len(self)} samples") from None
        return FolderDataset(picked, self.classes, self.info, self.split, self.root)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """The image at its own size as uint8 (3, H, W), and its label."""
        path, label = self.samples[i]
        return _to_tensor(_open_rgb(path)), label


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images_in(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return out


def _scan(folder: Path, classes: list[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    found = _class_dirs(folder)
    if not found:
        loose = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS]
        extra = f" (it holds {len(loose)} loose images: put them in class subfolders)" if loose else ""
        raise DataError(f"{folder} has no class subfolders{extra}")
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{folder} has classes not in the training folder: {unknown[:5]}")
    samples, empty = [], []
    for k, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        files = _images_in(folder / name)
        if not files:
            empty.append(name)
        samples += [(f, k) for f in files]
    if empty:
        raise DataError(f"{folder}: class folder(s) without images ({', '.join(IMAGE_EXTENSIONS)}): {empty[:5]}")
    return samples, classes


def load_image_folder(base: DatasetInfo, split: str, *, root=None, image_size=None, seed: int = 0, **options) -> FolderDataset:
    if options:
        raise DataError(f"imagefolder takes root=, image_size=, seed=; got unknown {sorted(options)}")
    if root is None:
        raise DataError("imagefolder needs root=PATH: a folder of class subfolders (or train/ and val/ folders of them)")
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise DataError(f"image folder {root_path} does not exist or is not a folder")
    train_dir = root_path / "train"
    if train_dir.is_dir():
        train_samples, classes = _scan(train_dir)
        if split == "train":
            samples = train_samples
        else:
            test_dir = next((root_path / d for d in ("val", "test", "validation") if (root_path / d).is_dir()), None)
            if test_dir is None:
                raise DataError(f"{root_path} has train/ but no val/ or test/ folder for the test split")
            samples, _ = _scan(test_dir, classes)
    else:
        all_samples, classes = _scan(root_path)
        labels = torch.tensor([k for _, k in all_samples])
        test = torch.zeros(len(all_samples), dtype=torch.bool)
        g = generator("folder-split", seed)
        for k in range(len(classes)):
            idx = torch.nonzero(labels == k).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            test[idx[: round(HOLDOUT * len(idx))]] = True
        keep = test if split == "test" else ~test
        samples = [s for s, t in zip(all_samples, keep.tolist()) if t]
    if image_size is None:
        image_size = base.image_size
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    if not (len(tuple(image_size)) == 2 and all(isinstance(v, int) and v >= 1 for v in image_size)):
        raise DataError(f"image_size must be an integer or (height, width), got {image_size!r}")
    info = replace(base, num_classes=len(classes), classes=list(classes), image_size=tuple(image_size))
    return FolderDataset(samples, classes, info, split, str(root_path))


# ----------------------------------------------------------------------------------
# Decoding (runs in worker processes)


def _open_rgb(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from exc


def _to_tensor(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _rrc_box(w: int, h: int, scale, ratio, rng: random.Random) -> tuple[int, int, int, int]:
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    ch, cw = rrc_fallback(h, w, ratio)
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def decode_image(path: str, size: tuple[int, int], *, rrc=None, sample_seed: int = 0, eval_crop: float | None = None) -> torch.Tensor:
    """Decode ``path`` to uint8 (3, H, W) at ``size``: a random-resized crop when ``rrc``
    is ``(scale, ratio)``, else resize the shorter side (to ``size / eval_crop`` when
    given) and take the centre."""
    from PIL import Image

    img = _open_rgb(path)
    h, w = size
    if rrc is not None:
        x0, y0, cw, ch = _rrc_box(img.width, img.height, rrc[0], rrc[1], random.Random(sample_seed))
        img = img.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        return _to_tensor(img)
    short = max(h, w) / eval_crop if eval_crop else max(h, w)
    s = short / min(img.width, img.height)
    nw, nh = max(w, round(img.width * s)), max(h, round(img.height * s))
    if (nw, nh) != img.size:
        img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - w) // 2, (nh - h) // 2
    return _to_tensor(img.crop((left, top, left + w, top + h)))


class _Decoder(torch.utils.data.Dataset):
    """Maps ``(index, sample_seed)`` to ``(uint8 image, label)`` for DataLoader workers."""

    def __init__(self, samples, size, rrc, eval_crop):
        self.samples, self.size, self.rrc, self.eval_crop = samples, size, rrc, eval_crop

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item):
        i, sample_seed = item
        path, label = self.samples[i]
        return decode_image(path, self.size, rrc=self.rrc, sample_seed=sample_seed, eval_crop=self.eval_crop), label


class FolderLoader(Loader):
    """Batches from a :class:`FolderDataset`: worker processes decode, the device augments."""

    def __init__(self, dataset: FolderDataset, *, batch_size, train, device, input_size, augment, seed, rank,
                 world_size, drop_last, num_workers, resize="auto"):
        super().__init__(len(dataset), batch_size=batch_size, train=train, device=device, seed=seed, rank=rank,
                         world_size=world_size, drop_last=drop_last)
        if not isinstance(num_workers, int) or num_workers < 0:
            raise DataError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.dataset = dataset
        info = dataset.info
        c = info.channels
        self.input_size = _input_size(input_size, (c, *info.image_size))
        size = self.input_size[1:]
        use_rrc = bool(train and augment is not None and augment.random_resized_crop)
        device_aug = replace(augment, random_resized_crop=False) if use_rrc else augment
        # geometry to the model's size happens in the workers; the device sees that size
        self.pipeline = BatchPipeline((c, *size), self.input_size, info.mean, info.std, device_aug, self.device, resize)
        self._decoder = _Decoder(dataset.samples, tuple(size), (augment.scale, augment.ratio) if use_rrc else None,
                                 None if train else EVAL_CROP)
        self.num_workers = num_workers
        self.classes = list(dataset.classes)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._aug_generator()
        batches = [[(int(i), mix_seed("decode", self.seed, self.epoch, int(i))) for i in b] for b in self.indices()]
        loader = torch.utils.data.DataLoader(
            self._decoder, batch_sampler=batches, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            yield self.pipeline(x, self.train, g), y
