"""Batched augmentation on the training device.

Every operation here takes a whole batch ``(N, C, H, W)`` and per-sample random
parameters drawn from a CPU ``torch.Generator`` (so a run is reproducible and the
same on CPU and GPU); nothing loops over samples in Python.

The pipeline (:class:`BatchPipeline`) runs, in order:

1. geometry: either an Inception-style random-resized crop straight to the model's
   size (Szegedy et al., 2015), or size adaptation (resize / zero-pad to the model's
   size) followed by a random crop with padding (constant or reflect) and a
   horizontal flip -- crop and flip are one gather for the batch, the padding is
   never materialised, and without interpolation it all runs on uint8;
2. AlexNet's PCA lighting noise (Krizhevsky et al., 2012, section 4.1): one colour
   shift per image (it commutes with crops, flips and resizes, so it can come after
   them; only zero padding, which AlexNet did not use, is shifted too);
3. channel adaptation (1 -> 3 by repetition, 3 -> 1 by ITU-R 601 luminance);
4. normalisation with the dataset's mean and std (fused with the 1/255 scaling);
5. Cutout (DeVries & Taylor, 2017): a zeroed square, after normalisation as in the
   paper's code, centred anywhere in the image (it may be cut by the border).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import torch
import torch.nn.functional as F

from cnnlab.data.core import DataError

__all__ = [
    "AugmentConfig",
    "BatchPipeline",
    "crop_flip",
    "random_crop_params",
    "random_resized_crop",
    "rrc_params",
    "rrc_fallback",
    "cutout",
    "pca_lighting",
    "adapt_size",
    "adapt_channels",
    "size_plan",
    "IMAGENET_PCA",
    "LUMA",
]

# ITU-R 601-2 luma weights (what Pillow's convert("L") uses).
LUMA = (0.299, 0.587, 0.114)

# Eigenvalues and eigenvectors (columns) of ImageNet's RGB pixel covariance on the 0-1
# scale, as published with fb.resnet.torch and used by most AlexNet-lighting ports.
IMAGENET_PCA = (
    (0.2175, 0.0188, 0.0045),
    ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203)),
)


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied batched on the device (see module docstring)."""

    crop_padding: int = 0  # random crop with this padding (CIFAR: 4)
    padding_mode: str = "constant"  # or "reflect" (Wide ResNet)
    flip: bool = False  # horizontal flip with p = 0.5
    random_resized_crop: bool = False  # Inception-style scale (0.08, 1), ratio (3/4, 4/3)
    scale: tuple = (0.08, 1.0)
    cutout: int = 0  # side of a zeroed square (0 = off)
    pca_lighting: float = 0.0  # AlexNet's PCA colour noise std (0 = off)
    ratio: tuple = (3 / 4, 4 / 3)  # aspect-ratio range of the random-resized crop

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise DataError(f"crop_padding must be an integer >= 0, got {self.crop_padding!r}")
        if self.padding_mode not in ("constant", "reflect"):
            raise DataError(f"padding_mode must be 'constant' or 'reflect', got {self.padding_mode!r}")
        if not isinstance(self.cutout, int) or self.cutout < 0:
            raise DataError(f"cutout must be an integer >= 0, got {self.cutout!r}")
        if not (isinstance(self.pca_lighting, (int, float)) and self.pca_lighting >= 0):
            raise DataError(f"pca_lighting must be a number >= 0, got {self.pca_lighting!r}")
        for name, lo_min in (("scale", 0.0), ("ratio", 0.0)):
            value = tuple(getattr(self, name))
            if len(value) != 2 or not (lo_min < value[0] <= value[1]) or (name == "scale" and value[1] > 1):
                raise DataError(f"{name} must be (low, high) with 0 < low <= high" + (" <= 1" if name == "scale" else "") + f", got {value!r}")
            setattr(self, name, value)
        if self.random_resized_crop and self.crop_padding:
            raise DataError("use either random_resized_crop or crop_padding, not both")

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"unknown augmentation option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.random_resized_crop or self.cutout or self.pca_lighting)


# ----------------------------------------------------------------------------------
# Geometry


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect indices into [0, n) without repeating the edge (numpy/torch 'reflect')."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def crop_flip(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor | None,
    size: tuple[int, int],
    padding: int,
    padding_mode: str = "constant",
) -> torch.Tensor:
    """Crop ``size`` windows out of ``x`` padded by ``padding`` on every side, then flip.

    ``top``/``left`` (N,) are window corners in padded coordinates (0 .. H + 2p - h);
    ``flip`` (N,) bool mirrors the window horizontally. Works on any dtype; constant
    padding is zero. Equivalent to ``F.pad`` + slicing + ``flip(-1)`` per sample, done
    as one gather for the whole batch.
    """
    n, c, h, w = x.shape
    oh, ow = size
    dev = x.device
    rows = top.to(dev).long()[:, None] - padding + torch.arange(oh, device=dev)  # N x oh
    cols = left.to(dev).long()[:, None] - padding + torch.arange(ow, device=dev)  # N x ow
    if flip is not None:
        cols = torch.where(flip.to(dev)[:, None], cols.flip(1), cols)
    if padding_mode == "reflect":
        if padding >= min(h, w):
            raise DataError(f"reflect padding {padding} needs images larger than it, got {h}x{w}")
        flat = _reflect(rows, h)[:, :, None] * w + _reflect(cols, w)[:, None, :]  # N x oh x ow
        planes = x.reshape(n, c, h * w)
    else:
        flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
        planes = x.reshape(n, c, h * w)
        if padding > 0:  # padded positions read a zero appended to every plane
            inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
            flat = torch.where(inside, flat, h * w)
            planes = F.pad(planes, (0, 1))
    # one gather over the flattened planes for the whole batch
    index = flat.view(n, 1, oh * ow).expand(n, c, oh * ow)
    return torch.gather(planes, 2, index).view(n, c, oh, ow)


def random_crop_params(n: int, in_size: tuple[int, int], out_size: tuple[int, int], padding: int, g: torch.Generator):
    """Window corners for :func:`crop_flip`, uniform over all positions."""
    h, w = in_size
    oh, ow = out_size
    span_h, span_w = h + 2 * padding - oh + 1, w + 2 * padding - ow + 1
    if span_h < 1 or span_w < 1:
        raise DataError(f"cannot crop {oh}x{ow} from {h}x{w} images padded by {padding}")
    top = (torch.rand(n, generator=g) * span_h).long().clamp_max(span_h - 1)
    left = (torch.rand(n, generator=g) * span_w).long().clamp_max(span_w - 1)
    return top, left


def rrc_fallback(h: int, w: int, ratio) -> tuple[int, int]:
    """(height, width) of the centre box used when no random box fits: the whole
    image, with its aspect ratio clamped into ``ratio``."""
    if w / h < ratio[0]:
        return round(w / ratio[0]), w
    if w / h > ratio[1]:
        return h, round(h * ratio[1])
    return h, w


def rrc_params(n: int, in_size: tuple[int, int], scale, ratio, g: torch.Generator, tries: int = 10):
    """Boxes (top, left, height, width) of an Inception-style random-resized crop.

    Like torchvision's sampler: area fraction uniform in ``scale``, log aspect ratio
    uniform in ``log(ratio)``; the first of ``tries`` candidates that fits is used,
    else a centre crop with the ratio clamped into range -- all samples at once.
    """
    h, w = in_size
    area = h * w
    target = area * torch.empty(n, tries).uniform_(scale[0], scale[1], generator=g)
    log_r = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(target * aspect).round()
    ch = torch.sqrt(target / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, dtype=torch.long))
    fh, fw = rrc_fallback(h, w, ratio)
    pick = first.clamp_min(0)[:, None]
    bw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.tensor(float(fw)))
    bh = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.tensor(float(fh)))
    u = torch.rand(n, 2, generator=g)
    top = torch.where(first >= 0, (u[:, 0] * (h - bh + 1)).floor().clamp_max(h - bh), (h - bh) / 2)
    left = torch.where(first >= 0, (u[:, 1] * (w - bw + 1)).floor().clamp_max(w - bw), (w - bw) / 2)
    return top, left, bh, bw


def random_resized_crop(x: torch.Tensor, boxes, size: tuple[int, int], flip: torch.Tensor | None = None) -> torch.Tensor:
    """Resample each box of ``x`` (float) to ``size`` with bilinear interpolation, one
    ``grid_sample`` for the batch; ``flip`` mirrors the output. No antialiasing when a
    box is shrunk by more than 2x (torchvision's tensor path antialiases)."""
    n, c, h, w = x.shape
    top, left, bh, bw = (t.to(x.device, torch.float32) for t in boxes)
    theta = torch.zeros(n, 2, 3, device=x.device)
    sx = bw / w
    if flip is not None:
        sx = torch.where(flip.to(x.device), -sx, sx)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, (n, c, size[0], size[1]), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def cutout(x: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    """Zero one ``side`` x ``side`` square per image, centred uniformly anywhere."""
    n, _, h, w = x.shape
    cy = (torch.rand(n, generator=g) * h).long().to(x.device)
    cx = (torch.rand(n, generator=g) * w).long().to(x.device)
    y0, x0 = cy - side // 2, cx - side // 2
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_r = (ar_h[None] >= y0[:, None]) & (ar_h[None] < (y0 + side)[:, None])  # N x H
    in_c = (ar_w[None] >= x0[:, None]) & (ar_w[None] < (x0 + side)[:, None])  # N x W
    hole = in_r[:, None, :, None] & in_c[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def pca_lighting(x: torch.Tensor, eigval: torch.Tensor, eigvec: torch.Tensor, std: float, g: torch.Generator) -> torch.Tensor:
    """AlexNet's lighting noise: add ``eigvec @ (alpha * eigval)`` to every pixel of an
    image, ``alpha ~ N(0, std)`` drawn per image (x on the 0-1 scale)."""
    n, c = x.shape[:2]
    alpha = torch.randn(n, c, generator=g) * std
    shift = (alpha * eigval[None]) @ eigvec.T  # N x C
    return x + shift.to(x.device, x.dtype)[:, :, None, None]


# ----------------------------------------------------------------------------------
# Size and channel adaptation


def size_plan(native: tuple[int, int], target: tuple[int, int], mode: str = "auto") -> str:
    """How to bring ``native`` (H, W) images to ``target``: "none", "pad" or "resize".

    ``auto`` pads (centred, with zeros) when the target is larger by at most a quarter
    of the native size on each side -- MNIST's 28x28 digits into LeNet-5's 32x32 input,
    as LeCun et al. (1998) did -- and resizes (bilinear, antialiased when shrinking)
    otherwise (8x8 digits to 32x32, CIFAR to 224x224).
    """
    if mode not in ("auto", "pad", "resize"):
        raise DataError(f"resize mode must be 'auto', 'pad' or 'resize', got {mode!r}")
    if tuple(native) == tuple(target):
        return "none"
    grow = [t - s for s, t in zip(native, target)]
    if mode == "pad":
        if min(grow) < 0:
            raise DataError(f"cannot pad {native[0]}x{native[1]} images to a smaller {target[0]}x{target[1]} input; use resize")
        return "pad"
    if mode == "auto" and all(0 <= d <= s // 4 for d, s in zip(grow, native)):
        return "pad"
    return "resize"


def adapt_size(x: torch.Tensor, target: tuple[int, int], plan: str) -> torch.Tensor:
    if plan == "none":
        return x
    h, w = x.shape[-2:]
    if plan == "pad":
        dh, dw = target[0] - h, target[1] - w
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    shrink = target[0] < h or target[1] < w
    return F.interpolate(x, size=tuple(target), mode="bilinear", align_corners=False, antialias=shrink)


def check_channels(have: int, want: int) -> None:
    if have != want and not ((have, want) in ((1, 3), (3, 1))):
        raise DataError(
            f"the model takes {want}-channel images but the dataset has {have} channels; "
            "only 1 -> 3 (repeat) and 3 -> 1 (luminance) can be adapted"
        )


def adapt_channels(x: torch.Tensor, want: int) -> torch.Tensor:
    have = x.shape[1]
    if have == want:
        return x
    check_channels(have, want)
    if have == 1:
        return x.expand(-1, 3, -1, -1)
    x = x if x.is_floating_point() else x.float()
    luma = torch.tensor(LUMA, device=x.device, dtype=x.dtype)
    return (x * luma[None, :, None, None]).sum(1, keepdim=True)


def adapt_stats(mean: Sequence[float], std: Sequence[float], want: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std after channel adaptation (3 -> 1 assumes fully correlated channels for std)."""
    if len(mean) == want:
        return tuple(mean), tuple(std)
    if len(mean) == 1:
        return tuple(mean) * want, tuple(std) * want
    return (sum(a * m for a, m in zip(LUMA, mean)),), (sum(a * s for a, s in zip(LUMA, std)),)


class BatchPipeline:
    """uint8 batches (native size) -> normalised float32 batches at the model's size."""

    def __init__(
        self,
        native: tuple[int, int, int],
        target: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
        augment: AugmentConfig | None,
        device: torch.device,
        resize: str = "auto",
        pca: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.native, self.target = tuple(native), tuple(target)
        check_channels(self.native[0], self.target[0])
        self.plan = size_plan(self.native[1:], self.target[1:], resize)
        self.augment = augment if augment is not None and augment.active else None
        side = min(self.target[1:])
        if self.augment is not None and self.augment.crop_padding >= side:
            raise DataError(f"crop_padding {self.augment.crop_padding} is not smaller than the {side}-pixel input: "
                            "most crops would be blank padding")
        if self.augment is not None and self.augment.cutout > side:
            raise DataError(f"cutout {self.augment.cutout} is larger than the {side}-pixel input: it would blank "
                            "whole images")
        m, s = adapt_stats(mean, std, self.target[0])
        if any(v <= 0 for v in s):
            raise DataError(f"std must be positive, got {s}")
        mean_t, std_t = torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)
        self.scale = (1.0 / (255.0 * std_t)).float().view(1, -1, 1, 1).to(device)
        self.shift = (-mean_t / std_t).float().view(1, -1, 1, 1).to(device)
        self.pca = None
        if self.augment is not None and self.augment.pca_lighting:
            if pca is None:
                if self.native[0] != 3:
                    raise DataError("PCA lighting needs the dataset's colour statistics (pca=) for non-RGB images")
                pca = (torch.tensor(IMAGENET_PCA[0]), torch.tensor(IMAGENET_PCA[1]))
            self.pca = pca
        self.device = device

    def __call__(self, x: torch.Tensor, train: bool, g: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        size = self.target[1:]
        aug = self.augment if train else None
        if aug is not None and g is None:
            raise DataError("training augmentation needs a generator")
        # Geometry first, on uint8 where no interpolation is needed (4x less memory
        # traffic than float); pixel values stay on the 0-255 scale until normalised.
        flip = (torch.rand(n, generator=g) < 0.5) if aug is not None and aug.flip else None
        if aug is not None and aug.random_resized_crop:
            boxes = rrc_params(n, self.native[1:], aug.scale, aug.ratio, g)
            x = random_resized_crop(x.float(), boxes, size, flip)
        else:
            x = adapt_size(x.float() if self.plan == "resize" else x, size, self.plan)
            if aug is not None and (aug.crop_padding or flip is not None):
                p = aug.crop_padding
                top, left = random_crop_params(n, size, size, p, g) if p else (torch.zeros(n), torch.zeros(n))
                x = crop_flip(x, top, left, flip, size, p, aug.padding_mode)
        if aug is not None and self.pca is not None:
            # a per-image colour shift commutes with the crops and resizes above (zero
            # padding is the exception: it gets shifted too, as AlexNet had no padding)
            x = pca_lighting(x.float(), self.pca[0], self.pca[1] * 255.0, float(aug.pca_lighting), g)
        x = adapt_channels(x, self.target[0])
        x = torch.addcmul(self.shift, x, self.scale)  # (x / 255 - mean) / std, uint8 -> float, one pass
        if aug is not None and aug.cutout:
            x = cutout(x, aug.cutout, g)
        return x
