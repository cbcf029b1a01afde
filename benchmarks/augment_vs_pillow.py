"""Images per second: cnnlab's batched on-device augmentation vs per-sample Pillow.

Both sides do the CIFAR training transform (He et al., 2016): zero-pad by 4, random
32x32 crop, random horizontal flip, to float, normalise with the dataset mean/std,
and hand over a batch of 256.

* cnnlab: ``make_loader(..., augment=AugmentConfig(crop_padding=4, flip=True))`` on
  uint8 tensors already on the device: one gather for crop + flip per batch.
* Pillow, the torchvision way, written out by hand: per image ``Image.fromarray``,
  ``ImageOps.expand`` (pad), ``crop``, ``transpose`` (flip), to a float tensor,
  normalise; ``torch.stack`` per batch. Measured in the main process and with a
  ``DataLoader`` of worker processes (how it is normally run).

    python benchmarks/augment_vs_pillow.py [--images 20000] [--device cpu|cuda] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import time

import numpy as np
import torch
from PIL import Image, ImageOps

from cnnlab.data import AugmentConfig, InMemoryDataset, dataset_info, make_loader

MEAN, STD = dataset_info("cifar10").mean, dataset_info("cifar10").std


class PillowCifar(torch.utils.data.Dataset):
    """Per-sample transforms with Pillow, as torchvision's CIFAR10 + transforms do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int = 0):
        self.images, self.labels = images, labels  # (N, 32, 32, 3) uint8, as torchvision keeps CIFAR
        self.rng = random.Random(seed)
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        img = ImageOps.expand(img, border=4, fill=0)  # pad 4
        top, left = self.rng.randint(0, 8), self.rng.randint(0, 8)
        img = img.crop((left, top, left + 32, top + 32))  # random crop
        if self.rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # flip
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)  # ToTensor
        return (x - self.mean) / self.std, int(self.labels[i])  # Normalize


def time_batched(images: torch.Tensor, labels: torch.Tensor, device: str, batch: int, epochs: int) -> float:
    info = dataset_info("cifar10")
    ds = InMemoryDataset(images, labels, list(info.classes), info)
    loader = make_loader(ds, batch_size=batch, train=True, device=device, augment=AugmentConfig(crop_padding=4, flip=True))
    for _ in zip(range(3), loader):  # warm-up
        pass
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    n = 0
    for e in range(epochs):
        loader.set_epoch(e)
        for x, _ in loader:
            n += len(x)
    sync()
    return n / (time.perf_counter() - start)


def time_pillow(images: np.ndarray, labels: np.ndarray, batch: int, workers: int, limit: int) -> float:
    ds = PillowCifar(images[:limit], labels[:limit])
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    start = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the Pillow DataLoader run")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    chw = torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()

    batched = time_batched(chw, torch.from_numpy(labels), args.device, args.batch_size, epochs=3)
    pil_limit = min(args.images, 10000)
    pil_main = time_pillow(hwc, labels, args.batch_size, 0, pil_limit)
    rows = [("cnnlab batched (" + args.device + ")", batched), ("Pillow per sample, main process", pil_main)]
    if args.workers > 0:
        rows.append((f"Pillow per sample, {args.workers} workers", time_pillow(hwc, labels, args.batch_size, args.workers, pil_limit)))

    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    print(f"CIFAR-sized images 3x32x32, pad 4 + random crop + flip + normalise, batch {args.batch_size}")
    print(f"machine: {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, {args.threads} threads{gpu}")
    width = max(len(r[0]) for r in rows)
    for name, ips in rows:
        print(f"  {name.ljust(width)}  {ips:12,.0f} images/s   x{batched / ips:6.1f}" if ips != batched
              else f"  {name.ljust(width)}  {ips:12,.0f} images/s")
    print(f"ratio batched / Pillow (main process): {batched / pil_main:.1f}x")


if __name__ == "__main__":
    main()
