"""Batched augmentation checked against per-sample reference operations written with
plain torch ops (F.pad + slicing + flip), and against hand-computed facts."""
import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import AugmentConfig, DataError
from cnnlab.data.augment import (
    BatchPipeline,
    adapt_channels,
    adapt_size,
    crop_flip,
    cutout,
    pca_lighting,
    random_crop_params,
    random_resized_crop,
    rrc_params,
    size_plan,
)


def _images(n=6, c=3, h=9, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_flip_matches_pad_slice_flip_per_sample(mode):
    x = _images()
    n, _, h, w = x.shape
    p = 3
    g = torch.Generator().manual_seed(1)
    top, left = random_crop_params(n, (h, w), (h, w), p, g)
    flip = torch.rand(n, generator=g) < 0.5
    out = crop_flip(x, top, left, flip, (h, w), p, mode)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = F.pad(x.float(), (p, p, p, p), mode=mode)
    for i in range(n):
        ref = padded[i, :, top[i]: top[i] + h, left[i]: left[i] + w]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i].float(), ref), i


def test_crop_keeps_content_shifted():
    x = _images(n=1, c=1, h=8, w=8)
    # window corner (p + dy, p + dx) in padded coordinates = content shifted by (-dy, -dx)
    p, dy, dx = 2, 1, -2
    out = crop_flip(x, torch.tensor([p + dy]), torch.tensor([p + dx]), None, (8, 8), p)
    assert torch.equal(out[0, 0, : 8 - dy, -dx:], x[0, 0, dy:, : 8 + dx])
    assert (out[0, 0, 8 - dy:, :] == 0).all() and (out[0, 0, :, : -dx] == 0).all()


def test_flip_is_a_flip_and_identity_without():
    x = _images()
    n = len(x)
    zeros = torch.zeros(n, dtype=torch.long)
    assert torch.equal(crop_flip(x, zeros, zeros, torch.ones(n, dtype=torch.bool), x.shape[-2:], 0), x.flip(-1))
    assert torch.equal(crop_flip(x, zeros, zeros, torch.zeros(n, dtype=torch.bool), x.shape[-2:], 0), x)


def test_crop_positions_cover_every_offset():
    g = torch.Generator().manual_seed(0)
    top, left = random_crop_params(20000, (32, 32), (32, 32), 4, g)
    assert set(top.tolist()) == set(range(9)) and set(left.tolist()) == set(range(9))


def test_cutout_zeroes_one_square_of_the_right_side():
    x = torch.ones(200, 2, 20, 20)
    out = cutout(x, 6, torch.Generator().manual_seed(0))
    zeros = (out == 0).sum((1, 2, 3)) / 2  # per image, per channel
    assert zeros.max() == 36  # a full 6x6 square when it lies inside
    assert zeros.min() >= 9  # centred inside the image: at least a quarter of it remains
    assert ((out == 0).all(1) == (out == 0).any(1)).all()  # the same square on every channel
    # the zeroed pixels form a rectangle (the square cut by the border)
    for img in (out[:, 0] == 0)[:20]:
        rows, cols = img.any(1).nonzero(), img.any(0).nonzero()
        assert img.sum() == len(rows) * len(cols)


def test_pca_lighting_shifts_each_image_along_the_eigenvectors():
    eigval = torch.tensor([0.2, 0.02, 0.004])
    eigvec = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))[0]
    x = torch.rand(5, 3, 4, 4)
    g = torch.Generator().manual_seed(7)
    out = pca_lighting(x, eigval, eigvec, 0.1, g)
    shift = (out - x)[:, :, 0, 0]
    assert torch.allclose(out - x, shift[:, :, None, None].expand_as(x), atol=1e-6)  # constant per image
    alpha = torch.randn(5, 3, generator=torch.Generator().manual_seed(7)) * 0.1
    assert torch.allclose(shift, (eigvec @ (alpha * eigval).T).T, atol=1e-6)  # AlexNet eq.: [p1 p2 p3][a1 l1, ...]^T


def test_rrc_boxes_respect_scale_ratio_and_bounds():
    g = torch.Generator().manual_seed(0)
    top, left, bh, bw = rrc_params(4000, (60, 80), (0.08, 1.0), (3 / 4, 4 / 3), g)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= 60).all() and (left + bw <= 80).all()
    area = bh * bw / (60 * 80)
    assert area.min() >= 0.07 and area.max() <= 1.0
    ratio = bw / bh
    assert ratio.min() > 0.7 and ratio.max() < 1.45  # rounding widens the range a little


def test_rrc_of_the_whole_image_is_a_plain_resize():
    x = torch.rand(3, 3, 16, 16)
    boxes = (torch.zeros(3), torch.zeros(3), torch.full((3,), 16.0), torch.full((3,), 16.0))
    out = random_resized_crop(x, boxes, (16, 16))
    assert torch.allclose(out, x, atol=1e-5)
    out = random_resized_crop(x, boxes, (16, 16), flip=torch.tensor([True, False, True]))
    assert torch.allclose(out[0], x[0].flip(-1), atol=1e-5) and torch.allclose(out[1], x[1], atol=1e-5)
    # a box of the top-left quarter, upsampled 2x: its mean is the quarter's mean
    half = (torch.zeros(3), torch.zeros(3), torch.full((3,), 8.0), torch.full((3,), 8.0))
    quarter = random_resized_crop(x, half, (16, 16))
    assert torch.allclose(quarter.mean((2, 3)), x[:, :, :8, :8].mean((2, 3)), atol=0.03)


def test_size_plan_pads_small_growth_and_resizes_otherwise():
    assert size_plan((28, 28), (32, 32)) == "pad"  # MNIST into LeNet-5 (LeCun et al. 1998)
    assert size_plan((8, 8), (32, 32)) == "resize"
    assert size_plan((32, 32), (224, 224)) == "resize"
    assert size_plan((32, 32), (28, 28)) == "resize"
    assert size_plan((32, 32), (32, 32)) == "none"
    with pytest.raises(DataError, match="smaller"):
        size_plan((32, 32), (28, 28), "pad")
    x = torch.rand(2, 1, 28, 28)
    padded = adapt_size(x, (32, 32), "pad")
    assert torch.equal(padded[:, :, 2:30, 2:30], x) and padded.sum() == x.sum()
    assert adapt_size(torch.ones(1, 1, 8, 8), (32, 32), "resize").allclose(torch.ones(1, 1, 32, 32))


def test_channel_adaptation():
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(adapt_channels(x, 3), x.repeat(1, 3, 1, 1))
    rgb = torch.zeros(1, 3, 1, 1)
    rgb[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.25])
    assert adapt_channels(rgb, 1).item() == pytest.approx(0.299 + 0.587 * 0.5 + 0.114 * 0.25)
    with pytest.raises(DataError, match="channel"):
        adapt_channels(torch.rand(1, 3, 2, 2), 4)


def test_pipeline_eval_normalises_with_the_dataset_statistics():
    x = _images(n=4, c=3, h=5, w=5)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    pipe = BatchPipeline((3, 5, 5), (3, 5, 5), mean, std, AugmentConfig(flip=True, cutout=2), torch.device("cpu"))
    out = pipe(x, train=False)
    ref = (x.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-6)


def test_pipeline_is_deterministic_given_the_generator():
    x = _images(n=8, c=3, h=12, w=12)
    cfg = AugmentConfig(crop_padding=2, padding_mode="reflect", flip=True, cutout=3, pca_lighting=0.1)
    pipe = BatchPipeline((3, 12, 12), (3, 16, 16), (0.5,) * 3, (0.25,) * 3, cfg, torch.device("cpu"))
    a = pipe(x, True, torch.Generator().manual_seed(5))
    b = pipe(x, True, torch.Generator().manual_seed(5))
    c = pipe(x, True, torch.Generator().manual_seed(6))
    assert a.shape == (8, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_augment_config_rejects_bad_values():
    with pytest.raises(DataError, match="padding_mode"):
        AugmentConfig(padding_mode="wrap")
    with pytest.raises(DataError, match="crop_padding"):
        AugmentConfig(crop_padding=-1)
    with pytest.raises(DataError, match="scale"):
        AugmentConfig(random_resized_crop=True, scale=(0.5, 2.0))
    with pytest.raises(DataError, match="unknown augmentation"):
        AugmentConfig.from_dict({"flip": True, "mixup": 0.2})
    assert not AugmentConfig().active and AugmentConfig(flip=True).active
    assert math.isclose(AugmentConfig().ratio[1], 4 / 3)


def test_flip_probability_is_one_half_statistically():
    # 4,000 asymmetric images: the flipped fraction is within 4 standard deviations of 0.5
    n = 4000
    x = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    x[:, :, :, 0] = 255  # left column bright: flipped images have it on the right
    pipe = BatchPipeline((1, 2, 2), (1, 2, 2), (0.0,), (1.0,), AugmentConfig(flip=True), torch.device("cpu"))
    out = pipe(x, True, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 1] > out[:, 0, 0, 0]).double().mean().item()
    assert abs(flipped - 0.5) < 4 * (0.25 / n) ** 0.5
    assert torch.equal(pipe(x, False), x.float() / 255)  # evaluation never flips
