"""``imagefolder``: a folder of class subfolders, decoded with Pillow by worker processes.

Layout (ImageNet's, or your own photos)::

    ROOT/train/<class>/*.jpg    ROOT/val/<class>/*.jpg  (or test/, validation/)
    ROOT/<class>/*.jpg          (no split folders: a seeded, stratified 10% is "test")

    ROOT/train, ROOT/val, ROOT/test  (all three: val/ is the validation split)

Workers decode each image (grayscale folders as one channel, others as RGB) and
bring it to the loader's size. In training with ``random_resized_crop`` they cut an
Inception-style random box (seeded by ``(seed, epoch, sample)``) and resize it.
Otherwise -- evaluation, and training without random-resized crop alike, so the two
see images prepared the same way -- they resize the shorter side to
``size / crop_pct`` and take the centre (``crop_pct`` 0.875 for inputs of 128 pixels
and more, as in the ResNet and Inception evaluations: 256 -> 224; 1 for small
images); an image that already has the input's shape is padded or resized exactly as
an in-memory dataset of such images would be. Flip, padding crop, PCA lighting,
normalisation and Cutout then run batched on the device as for in-memory datasets.

Normalisation statistics are the folder's own: the per-channel mean and standard
deviation of a seeded sample of its training images (or declared with ``mean=`` and
``std=``; ``mean="imagenet"`` takes ImageNet's), never borrowed silently.
"""
from __future__ import annotations

import functools
import math
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from cnnlab.data.augment import BatchPipeline, adapt_size, rrc_fallback, size_plan
from cnnlab.data.core import DataError, DatasetInfo, generator, mix_seed, stratified_holdout
from cnnlab.data.loader import Loader, _input_size

__all__ = ["FolderDataset", "FolderLoader", "load_image_folder", "IMAGE_EXTENSIONS", "decode_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
HOLDOUT = 0.1  # test fraction when the folder has no split subfolders
EVAL_CROP = 0.875  # crop_pct for inputs of at least LARGE_INPUT pixels
LARGE_INPUT = 128
STATS_SAMPLE = 256  # training images whose pixels give the mean and std
MAX_PIXELS = 100_000_000  # a larger image is refused with a message, not decoded (Pillow warns at ~89 M)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


class FolderDataset:
    """Image paths and labels; images are decoded on demand (in loader workers)."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: list[str], info: DatasetInfo, split: str, root: str,
                 crop_pct: float | None = None):
        self.crop_pct = crop_pct  # None: by input size (see the module docstring)
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
        return FolderDataset(picked, self.classes, self.info, self.split, self.root, self.crop_pct)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """The image at its own size as uint8 (C, H, W), and its label."""
        path, label = self.samples[i]
        return _to_tensor(_open_image(path, self.info.channels)), label


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images_in(top: Path, seen_files: set[str], seen_dirs: set[str], links: list[str]) -> list[str]:
    """Image files under ``top``, walked once without following links: directory links
    met on the way are appended to ``links`` for the caller to walk later. A folder
    already walked (by its real path) is not walked again, and a file already found is not
    listed again (``seen_dirs`` and ``seen_files`` are shared by all the walks of a scan):
    a link loop or a link to another class's folder would otherwise count files twice,
    and could put one image in both train and test."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):  # os.walk does not follow links by default
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real_dir)
        keep = []
        for d in sorted(dirnames):
            if not d.startswith("."):
                path = os.path.join(dirpath, d)
                if os.path.islink(path):
                    links.append(path)
                else:
                    keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(dirpath, f)
                real = os.path.realpath(path) if os.path.islink(path) else os.path.join(real_dir, f)
                if real not in seen_files:
                    seen_files.add(real)
                    out.append(path)
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
    seen_files: set[str] = set()
    seen_dirs: set[str] = set()
    # Each class's own files first, then what its directory links add (files not found already).
    links: dict[str, list[str]] = {name: [] for name in classes}
    own = {name: _images_in(folder / name, seen_files, seen_dirs, links[name])
           for name in classes if (folder / name).is_dir()}
    for k, name in enumerate(classes):
        if name not in own:
            continue
        files = own[name]
        pending = links[name]
        while pending:  # a linked folder may hold links of its own
            files += _images_in(Path(pending.pop(0)), seen_files, seen_dirs, pending)
        files = sorted(files)
        if not files:
            empty.append(name)
        samples += [(f, k) for f in files]
    if empty:
        raise DataError(f"{folder}: class folder(s) without images ({', '.join(IMAGE_EXTENSIONS)}): {empty[:5]}")
    return samples, classes


def official_val_dir(root: Path) -> Path | None:
    """``root/val`` (or ``validation``) when ``root`` also has ``train/`` and ``test/``."""
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        return None
    return next((root / d for d in ("val", "validation") if (root / d).is_dir()), None)


def load_image_folder(base: DatasetInfo, split: str, *, root=None, image_size=None, seed: int = 0, crop_pct=None,
                      channels=None, mean=None, std=None, **options) -> FolderDataset:
    if options:
        raise DataError(f"imagefolder takes root=, image_size=, seed=, crop_pct=, channels=, mean=, std=; "
                        f"got unknown {sorted(options)}")
    if root is None:
        raise DataError("imagefolder needs root=PATH: a folder of class subfolders (or train/ and val/ folders of them)")
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise DataError(f"image folder {root_path} does not exist or is not a folder")
    train_dir = root_path / "train"
    if train_dir.is_dir():
        train_samples, classes = _scan(train_dir)
        val_dir = official_val_dir(root_path)
        if split == "train":
            samples = train_samples
        elif split == "val":
            if val_dir is None:
                raise DataError(f"{root_path} has no validation folder (train/, val/ and test/ all needed)")
            samples, _ = _scan(val_dir, classes)
        else:
            order = ("test", "val", "validation")
            test_dir = next((root_path / d for d in order if (root_path / d).is_dir()), None)
            if test_dir is None:
                raise DataError(f"{root_path} has train/ but no val/ or test/ folder for the test split")
            samples, _ = _scan(test_dir, classes)
    else:
        if split == "val":
            raise DataError(f"{root_path} has no validation folder (train/, val/ and test/ all needed)")
        all_samples, classes = _scan(root_path)
        labels = torch.tensor([k for _, k in all_samples])
        test = stratified_holdout(labels, HOLDOUT, "folder-split", seed, num_classes=len(classes))
        train_samples = [s for s, t in zip(all_samples, test.tolist()) if not t]
        keep = test if split == "test" else ~test
        samples = [s for s, t in zip(all_samples, keep.tolist()) if t]
    if image_size is None:
        image_size = base.image_size
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    if not (len(tuple(image_size)) == 2 and all(isinstance(v, int) and v >= 1 for v in image_size)):
        raise DataError(f"image_size must be an integer or (height, width), got {image_size!r}")
    if crop_pct is not None and not (isinstance(crop_pct, (int, float)) and 0.1 <= crop_pct <= 1):
        raise DataError(f"crop_pct must be a number in [0.1, 1], got {crop_pct!r}")
    if channels is None:
        channels = _guess_channels([p for p, _ in train_samples])
    elif channels not in (1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    mean, std, stats = _stats([p for p, _ in train_samples], channels, mean, std, seed)
    info = replace(base, num_classes=len(classes), classes=list(classes), image_size=tuple(image_size),
                   channels=channels, mean=mean, std=std, source=f"{root_path} ({stats})")
    return FolderDataset(samples, classes, info, split, str(root_path), crop_pct)


def _guess_channels(paths: list[str], sample: int = 64) -> int:
    """1 when a seeded sample of the images are all grayscale, else 3 (headers only)."""
    from PIL import Image

    rng = random.Random(0)
    picked = paths if len(paths) <= sample else rng.sample(paths, sample)
    for path in picked:
        try:
            with Image.open(path) as im:
                if im.mode not in GRAY_MODES and not (im.mode == "P" and _palette_is_gray(im)):
                    return 3
        except Exception:  # an unreadable file is reported when it is decoded
            return 3
    return 1


def _palette_is_gray(im) -> bool:
    pal = im.getpalette() or []
    return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))


@functools.lru_cache(maxsize=16)
def _measured_stats(paths: tuple[str, ...], channels: int, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    rng = random.Random(mix_seed("folder-stats", seed))
    picked = list(paths) if len(paths) <= STATS_SAMPLE else rng.sample(list(paths), STATS_SAMPLE)
    total = torch.zeros(channels, dtype=torch.float64)
    square = torch.zeros(channels, dtype=torch.float64)
    count = 0
    first_error = None
    for path in picked:
        try:
            x = _to_tensor(_open_image(path, channels)).double() / 255.0
        except DataError as exc:  # reported by path when the loader decodes it
            first_error = first_error or exc
            continue
        total += x.sum(dim=(1, 2))
        square += x.square().sum(dim=(1, 2))
        count += x.shape[1] * x.shape[2]
    if count == 0:
        raise DataError(f"none of the {len(picked)} training images sampled to measure the mean and std could be "
                        f"decoded; the first: {first_error}")
    mean = total / count
    std = (square / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(max(round(float(v), 4), 1e-3) for v in std)


def _stats(paths: list[str], channels: int, mean, std, seed: int):
    """(mean, std, how they were obtained) for normalising the folder's images."""
    from cnnlab.data.datasets import IMAGENET_MEAN, IMAGENET_STD

    if isinstance(mean, str):
        if mean.lower() != "imagenet" or std not in (None, "imagenet"):
            raise DataError(f"mean= takes per-channel numbers or 'imagenet', got {mean!r}")
        if channels != 3:
            raise DataError("ImageNet's colour statistics need RGB images (channels=3)")
        return IMAGENET_MEAN, IMAGENET_STD, "ImageNet mean/std, as declared"
    if mean is not None or std is not None:
        try:
            m = tuple(float(v) for v in (mean if isinstance(mean, (list, tuple)) else [mean]))
            s = tuple(float(v) for v in (std if isinstance(std, (list, tuple)) else [std]))
        except (TypeError, ValueError):
            raise DataError(f"mean= and std= take numbers (one per channel), got {mean!r} and {std!r}") from None
        if len(m) != channels or len(s) != channels or any(v <= 0 for v in s):
            raise DataError(f"mean= and std= need {channels} value(s) each, std positive; got {mean!r} and {std!r}")
        return m, s, "mean/std as declared"
    m, s = _measured_stats(tuple(paths), channels, seed)
    n = min(len(paths), STATS_SAMPLE)
    return m, s, f"mean/std measured on {n} training images"


# ----------------------------------------------------------------------------------
# Decoding (runs in worker processes)


def _open_image(path: str, channels: int = 3):
    """The image as 8-bit grayscale ("L") or RGB; 16-bit grayscale is scaled, not clipped."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"image {path} has {im.width}x{im.height} pixels, more than cnnlab decodes "
                                f"({MAX_PIXELS:,}); shrink it or leave it out")
            im = ImageOps.exif_transpose(im)  # the orientation the camera recorded
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                im = Image.fromarray(_gray_to_8bit(np.asarray(im, dtype=np.float64), im.mode), "L")
            return im.convert("L" if channels == 1 else "RGB")
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from None


def _gray_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    """Deep grayscale scaled to 0-255 by the range its values are written in, not clipped
    (Pillow's own conversion clips, so a 16-bit scan turns white and a 0-1 float image black):
    16-bit modes by 65535; 32-bit integer ("I") by 65535 when a value exceeds 255, else 255;
    float ("F") by 1 when every finite value lies in [0, 1], else as the integers."""
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F" and arr.size and arr.min() >= 0 and arr.max() <= 1:
        top = 1.0
    else:
        top = 65535.0 if arr.size and arr.max() > 255 else 255.0
    return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)


def _to_tensor(img) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


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


def decode_image(path: str, size: tuple[int, int], *, rrc=None, sample_seed: int = 0, eval_crop: float | None = None,
                 channels: int = 3) -> torch.Tensor:
    """Decode ``path`` to uint8 (C, H, W) at ``size``: a random-resized crop when ``rrc``
    is ``(scale, ratio)``; else an image of the input's shape (and ``eval_crop`` 1 or
    None) is padded or resized as in-memory datasets are (``size_plan``), and any other
    is resized on its shorter side to ``size / eval_crop`` and centre-cropped."""
    from PIL import Image

    img = _open_image(path, channels)
    h, w = size
    if rrc is not None:
        x0, y0, cw, ch = _rrc_box(img.width, img.height, rrc[0], rrc[1], random.Random(sample_seed))
        img = img.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        return _to_tensor(img)
    if (not eval_crop or eval_crop == 1) and img.height * w == img.width * h:
        x = _to_tensor(img)
        plan = size_plan((img.height, img.width), (h, w))
        if plan == "none":
            return x
        y = adapt_size(x[None].float() if plan == "resize" else x[None], (h, w), plan)[0]
        return y.round().clamp_(0, 255).to(torch.uint8) if y.is_floating_point() else y
    short = max(h, w) / eval_crop if eval_crop else max(h, w)
    s = short / min(img.width, img.height)
    nw, nh = max(w, round(img.width * s)), max(h, round(img.height * s))
    if (nw, nh) != img.size:
        img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - w) // 2, (nh - h) // 2
    return _to_tensor(img.crop((left, top, left + w, top + h)))


class _Decoder(torch.utils.data.Dataset):
    """Maps ``(index, sample_seed)`` to ``(uint8 image, label)`` for DataLoader workers."""

    def __init__(self, samples, size, rrc, eval_crop, channels):
        self.samples, self.size, self.rrc, self.eval_crop, self.channels = samples, size, rrc, eval_crop, channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item):
        i, sample_seed = item
        path, label = self.samples[i]
        return decode_image(path, self.size, rrc=self.rrc, sample_seed=sample_seed, eval_crop=self.eval_crop,
                            channels=self.channels), label


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
        crop_pct = getattr(dataset, "crop_pct", None)
        if crop_pct is None:
            crop_pct = EVAL_CROP if min(size) >= LARGE_INPUT else 1.0
        self.crop_pct = crop_pct
        # Training without random-resized crop prepares images exactly as evaluation does.
        self._decoder = _Decoder(dataset.samples, tuple(size), (augment.scale, augment.ratio) if use_rrc else None,
                                 crop_pct, c)
        self.num_workers = num_workers
        self.classes = list(dataset.classes)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._aug_generator()
        batches = [[(int(i), mix_seed("decode", self.seed, self.epoch, int(i))) for i in b] for b in self.indices()]
        loader = torch.utils.data.DataLoader(
            self._decoder, batch_sampler=batches, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        try:
            for x, y in loader:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                yield self.pipeline(x, self.train, g), y
        except DataError as exc:  # from a worker: its traceback is in the message; keep the one line
            lines = [line for line in str(exc).splitlines() if line.strip()]
            line = next((l for l in reversed(lines) if "DataError:" in l), lines[-1] if lines else str(exc))
            raise DataError(line.split("DataError:", 1)[-1].strip()) from None
