"""``shapes``: seeded, procedurally drawn shapes on clutter, at any resolution.

Each image holds one filled shape (the class) at a random position, size, rotation
and colour, over a smooth random colour field crossed by a few thin random line
segments, with a little pixel noise. Everything is drawn with batched tensor
operations in chunks of images; chunk ``k`` of a split is drawn from a generator
seeded with ``(seed, split, image_size, k)``, so a dataset is a pure function of its
arguments, and the first images do not change when ``num_samples`` grows.
Labels cycle through the classes (image ``i`` has class ``i % num_classes``), so the
classes are balanced. Shapes and lines are affine images of small anti-aliased
templates, drawn with one ``grid_sample`` per layer for the whole chunk.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from cnnlab.data.core import DataError, generator

__all__ = ["SHAPE_CLASSES", "make_shapes"]

SHAPE_CLASSES = (
    "circle", "square", "triangle", "rectangle", "cross",
    "ring", "star", "hexagon", "semicircle", "crescent",
)
_SQRT3 = math.sqrt(3.0)
_SEGMENTS = 3  # clutter lines per image
_EXTENT = 1.05  # shape templates cover local coordinates [-_EXTENT, _EXTENT]
# a bar filling the middle half of a 4x4 template: sampled, it becomes a line segment
_BAR = F.pad(torch.ones(1, 1, 2, 2), (1, 1, 1, 1))


def _inside(name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Membership of local coordinates (unit = the shape's radius) in a shape."""
    au, av = u.abs(), v.abs()
    r2 = u * u + v * v
    if name == "circle":
        return r2 <= 1.0
    if name == "square":
        return torch.maximum(au, av) <= 0.75
    if name == "triangle":  # equilateral, inscribed in the unit circle
        return (v >= -0.5) & (v <= 1.0 - _SQRT3 * au)
    if name == "rectangle":
        return (au <= 0.95) & (av <= 0.45)
    if name == "cross":
        return ((au <= 0.28) & (av <= 0.95)) | ((av <= 0.28) & (au <= 0.95))
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.36)
    if name == "star":  # five rounded points
        return r2.sqrt() <= 0.62 + 0.38 * torch.cos(5.0 * torch.atan2(v, u))
    if name == "hexagon":
        return (av <= _SQRT3 / 2) & (_SQRT3 * au + av <= _SQRT3)
    if name == "semicircle":
        return (r2 <= 1.0) & (v >= -0.15)
    if name == "crescent":
        return (r2 <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.64)
    raise AssertionError(name)


def _affine(cos, sin, cx, cy, su, sv) -> torch.Tensor:
    """theta for ``F.affine_grid``: image point p -> (su * d.(p-c), sv * d_perp.(p-c))."""
    theta = torch.empty(cos.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = su * cos, su * sin
    theta[:, 0, 2] = -su * (cos * cx + sin * cy)
    theta[:, 1, 0], theta[:, 1, 1] = -sv * sin, sv * cos
    theta[:, 1, 2] = -sv * (-sin * cx + cos * cy)
    return theta


@functools.lru_cache(maxsize=4)
def _templates(res: int, num_classes: int) -> torch.Tensor:
    """Anti-aliased masks (K, 1, res, res) of the shapes, covering local [-_EXTENT, _EXTENT]."""
    s = res * 2
    c = ((torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1) * _EXTENT
    v, u = torch.meshgrid(-c, c, indexing="ij")  # v points up
    masks = torch.stack([_inside(SHAPE_CLASSES[k], u, v).float() for k in range(num_classes)])
    return F.avg_pool2d(masks[:, None], 2)


def _sample(templates: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    grid = F.affine_grid(theta, (theta.shape[0], 1, size, size), align_corners=False)
    return F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _chunk(n: int, start: int, size: int, num_classes: int, g: torch.Generator, full: int) -> torch.Tensor:
    """Draw images ``start .. start+n`` as float (n, 3, size, size) in [0, 1]. The random
    draws are made for a ``full`` chunk, so image ``i`` does not depend on ``n``."""
    labels = torch.arange(start, start + n) % num_classes
    # per-image parameters, all drawn first in a fixed order
    centre = torch.rand(full, 2, generator=g)[:n] * 0.9 - 0.45  # in [-1, 1] image coordinates
    radius = 0.28 + torch.rand(full, generator=g)[:n] * 0.22
    angle = torch.rand(full, generator=g)[:n] * (2 * math.pi)
    bg = torch.rand(full, 3, generator=g)[:n] * 0.8 + 0.1
    fg = torch.remainder(bg + 0.5 + (torch.rand(full, 3, generator=g)[:n] - 0.5) * 0.3, 1.0)
    field = torch.randn(full, 3, 4, 4, generator=g)[:n] * 0.12
    seg = torch.rand(full, _SEGMENTS, 4, generator=g)[:n] * 2 - 1  # endpoints (x0, y0, x1, y1)
    seg_col = torch.rand(full, _SEGMENTS, 3, generator=g)[:n]
    noise = torch.randn(full, 3, size, size, generator=g)[:n] * 0.03

    img = bg[:, :, None, None] + F.interpolate(field, size=(size, size), mode="bilinear", align_corners=False)
    # clutter: thin line segments, each an affine image of a unit bar
    half_width = 1.2 / size  # about 1.2 pixels either side (image coordinates span 2)
    for k in range(_SEGMENTS):
        a, b = seg[:, k, :2], seg[:, k, 2:]
        mid, d = (a + b) / 2, b - a
        length = d.norm(dim=1).clamp_min(1e-3)
        cos, sin = d[:, 0] / length, d[:, 1] / length
        theta = _affine(cos, sin, mid[:, 0], mid[:, 1], 1.0 / length, 0.5 / half_width)
        bar = _sample(_BAR.expand(n, 1, 4, 4), theta, size)  # n x 1 x size x size
        img = torch.lerp(img, seg_col[:, k, :, None, None].expand_as(img), bar)
    # the shape: its template rotated, scaled and moved; image y points down, shapes' v up
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = _affine(cos, sin, centre[:, 0], centre[:, 1], 1.0 / (_EXTENT * radius), 1.0 / (_EXTENT * radius))
    theta[:, 1] = -theta[:, 1]
    res = 64 if size <= 64 else 128
    mask = _sample(_templates(res, num_classes)[labels], theta, size)
    img = torch.lerp(img, fg[:, :, None, None].expand_as(img), mask)
    return img.add_(noise).clamp_(0, 1)


def make_shapes(num_samples: int, image_size: int = 32, num_classes: int = 10, seed: int = 0, split: str = "train"):
    """Images uint8 (N, 3, S, S) and labels int64 (N,) of the ``shapes`` dataset."""
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise DataError(f"shapes images are square; got image_size={image_size!r}")
        image_size = image_size[0]
    if not isinstance(image_size, int) or image_size < 8:
        raise DataError(f"shapes image_size must be an integer >= 8, got {image_size!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise DataError(f"shapes num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise DataError(f"shapes num_classes must be between 2 and {len(SHAPE_CLASSES)}, got {num_classes!r}")
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    res = 64 if image_size <= 64 else 128
    chunk = max(1, min(512, (1 << 22) // max(image_size * image_size * 3, res * res)))  # bounded float working memory
    images = torch.empty(num_samples, 3, image_size, image_size, dtype=torch.uint8)
    for k, start in enumerate(range(0, num_samples, chunk)):
        n = min(chunk, num_samples - start)
        g = generator("shapes", seed, split, image_size, num_classes, k)
        images[start:start + n] = _chunk(n, start, image_size, num_classes, g, chunk).mul_(255).round_().to(torch.uint8)
    labels = torch.arange(num_samples) % num_classes
    return images, labels
