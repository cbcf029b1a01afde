"""Statistics of the random augmentations and of the normalisation, measured over many
samples and compared with what they should be, computed independently (by counting
with numpy, or from the formula in the paper). Tolerances are stated as multiples of
the standard error of the measured quantity; the generators are seeded, so every test
is deterministic -- the tolerances say how far from exact a correct sampler may land.
"""
import math

import numpy as np
import pytest
import torch

from cnnlab.data import AugmentConfig
from cnnlab.data.augment import (
    IMAGENET_PCA,
    LUMA,
    BatchPipeline,
    adapt_size,
    cutout,
    random_crop_params,
    random_resized_crop,
    rrc_params,
    size_plan,
)
from cnnlab.data.core import DatasetInfo, InMemoryDataset
from cnnlab.data.folder import decode_image

CPU = torch.device("cpu")


def _within(freq: np.ndarray, p: np.ndarray, n: int, sigmas: float = 5.0) -> bool:
    """Whether observed frequencies lie within ``sigmas`` binomial standard errors of ``p``."""
    se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    return bool(np.all(np.abs(freq - p) <= sigmas * se + 1e-12))


# ---------------------------------------------------------------------------------- random crop


@pytest.mark.parametrize("in_size,out_size,padding", [((32, 32), (32, 32), 4), ((10, 14), (6, 9), 1)])
def test_crop_corners_are_uniform_and_independent(in_size, out_size, padding):
    n = 30_000
    top, left = random_crop_params(n, in_size, out_size, padding, torch.Generator().manual_seed(0))
    span_h = in_size[0] + 2 * padding - out_size[0] + 1  # every corner whose window fits the padded image
    span_w = in_size[1] + 2 * padding - out_size[1] + 1
    assert top.min() == 0 and top.max() == span_h - 1 and left.min() == 0 and left.max() == span_w - 1
    ft = np.bincount(top.numpy(), minlength=span_h) / n
    fl = np.bincount(left.numpy(), minlength=span_w) / n
    assert _within(ft, np.full(span_h, 1 / span_h), n) and _within(fl, np.full(span_w, 1 / span_w), n)
    # top and left are drawn independently: the correlation is ~N(0, 1/n)
    assert abs(np.corrcoef(top.numpy(), left.numpy())[0, 1]) < 5 / math.sqrt(n)


@pytest.mark.parametrize("padding_mode", ["constant", "reflect"])
def test_pipeline_shifts_are_uniform_and_flips_half(padding_mode):
    # one bright pixel in the middle of a 9x9 image: where it lands in the output gives
    # the crop's shift (dy, dx) in -p..p and whether the image was flipped
    n, h, p = 9000, 9, 2
    x = torch.zeros(n, 1, h, h, dtype=torch.uint8)
    x[:, 0, 4, 3] = 255  # left of the centre column, so a flip moves it to column 5
    cfg = AugmentConfig(crop_padding=p, padding_mode=padding_mode, flip=True)
    pipe = BatchPipeline((1, h, h), (1, h, h), (0.0,), (1.0,), cfg, CPU)
    out = pipe(x, True, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    flat = out[:, 0].reshape(n, -1).argmax(1)
    r, c = (flat // h).numpy(), (flat % h).numpy()
    dy = 4 - r  # window moved down by dy -> the pixel moves up
    assert set(dy.tolist()) == set(range(-p, p + 1))
    f = np.bincount(dy + p, minlength=2 * p + 1) / n
    assert _within(f, np.full(2 * p + 1, 1 / (2 * p + 1)), n)
    # unflipped: column 3 - dx (dx in -p..p, so 1..5); flipped: column 8 - (3 - dx) = 5 + dx (3..7)
    # the two overlap; the flip fraction is recovered from the mean column: E[c] = 3 + 2 * P(flip)
    p_flip = (c.mean() - 3) / 2
    assert abs(p_flip - 0.5) < 5 * math.sqrt(0.25 / n) + 5 * math.sqrt(2 / 4 / n)


# ---------------------------------------------------------------------------------- cutout


def _cutout_row_coverage(h: int, side: int) -> np.ndarray:
    """P(row r is inside the square) with its centre uniform on 0..h-1, counted by hand:
    the square covers rows centre - side // 2 .. centre - side // 2 + side - 1."""
    cover = np.zeros(h)
    for centre in range(h):
        lo = centre - side // 2
        for r in range(max(lo, 0), min(lo + side, h)):
            cover[r] += 1
    return cover / h


@pytest.mark.parametrize("side", [5, 6])
def test_cutout_square_position_matches_the_uniform_centre(side):
    n, h, w = 6000, 10, 13
    out = cutout(torch.ones(n, 1, h, w), side, torch.Generator().manual_seed(1))
    hole = out[:, 0] == 0
    rows_hit = hole.any(2).double().mean(0).numpy()  # fraction of images whose square covers row r
    cols_hit = hole.any(1).double().mean(0).numpy()
    assert _within(rows_hit, _cutout_row_coverage(h, side), n)
    assert _within(cols_hit, _cutout_row_coverage(w, side), n)
    # and the zeroed area is the product of the covered rows and columns
    area = hole.sum((1, 2)).double()
    assert torch.equal(area, hole.any(2).sum(1).double() * hole.any(1).sum(1).double())
    expected_area = _cutout_row_coverage(h, side).sum() * _cutout_row_coverage(w, side).sum()
    assert abs(area.mean().item() - expected_area) < 5 * area.std().item() / math.sqrt(n)


def test_pipeline_cutout_zeroes_after_normalisation():
    # after normalisation a zeroed pixel is the dataset mean; mid-grey images normalise to 1.0
    x = torch.full((200, 1, 8, 8), 191, dtype=torch.uint8)
    mean, std = (0.25,), (0.5,)
    pipe = BatchPipeline((1, 8, 8), (1, 8, 8), mean, std, AugmentConfig(cutout=4), CPU)
    out = pipe(x, True, torch.Generator().manual_seed(0))
    value = (191 / 255 - 0.25) / 0.5
    assert torch.allclose(out[out != 0], torch.tensor(value), atol=1e-6)
    zeros = (out == 0).sum((1, 2, 3)).double()
    assert zeros.max() == 16 and zeros.min() >= 4
    assert abs(zeros.mean().item() - _cutout_row_coverage(8, 4).sum() ** 2) < 1.0


# ---------------------------------------------------------------------------------- random-resized crop


def test_rrc_area_fraction_is_uniform_in_scale():
    # square boxes (ratio 1) on a large square image always fit: the area fraction is U(scale)
    n, lo, hi = 8000, 0.25, 1.0
    top, left, bh, bw = rrc_params(n, (120, 120), (lo, hi), (1.0, 1.0), torch.Generator().manual_seed(0))
    frac = (bh * bw / 120 ** 2).double().numpy()
    assert np.all(bh.numpy() == bw.numpy())
    # quartiles of U(lo, hi), each within 5 standard errors (+ the rounding of the side to whole pixels)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        se = math.sqrt(q * (1 - q) / n) * (hi - lo)
        assert abs(np.quantile(frac, q) - (lo + q * (hi - lo))) < 5 * se + 0.01, q
    assert frac.min() >= lo - 0.01 and frac.max() <= 1.0


def test_rrc_log_aspect_ratio_is_uniform_in_log_ratio():
    n, r0, r1 = 8000, 0.5, 2.0
    _, _, bh, bw = rrc_params(n, (400, 400), (0.1, 0.1), (r0, r1), torch.Generator().manual_seed(1))
    log_r = torch.log(bw / bh).double().numpy()
    a, b = math.log(r0), math.log(r1)
    sd = (b - a) / math.sqrt(12)  # of U(a, b)
    assert abs(log_r.mean() - (a + b) / 2) < 5 * sd / math.sqrt(n) + 0.01  # +0.01: sides are whole pixels
    assert abs(log_r.std() - sd) < 0.02
    assert log_r.min() > a - 0.03 and log_r.max() < b + 0.03
    assert log_r.min() < a + 0.05 and log_r.max() > b - 0.05  # the whole range is used
    area = (bh * bw).double().numpy() / 400 ** 2
    assert np.all(np.abs(area - 0.1) < 0.01)


def test_rrc_box_corner_is_uniform_over_positions_that_fit():
    # scale 1/4 and ratio 1 on 20x20: every box is 10x10, corners uniform on 0..10
    n = 11_000
    top, left, bh, bw = rrc_params(n, (20, 20), (0.25, 0.25), (1.0, 1.0), torch.Generator().manual_seed(2))
    assert torch.all(bh == 10) and torch.all(bw == 10)
    for t in (top, left):
        assert torch.equal(t, t.floor())
        f = np.bincount(t.long().numpy(), minlength=11) / n
        assert len(f) == 11 and _within(f, np.full(11, 1 / 11), n)


@pytest.mark.parametrize("h,w,box", [(10, 100, (0.0, 43.5, 10.0, 13.0)), (100, 10, (43.5, 0.0, 13.0, 10.0)),
                                     (10, 11, (0.0, 0.0, 10.0, 11.0))])
def test_rrc_falls_back_to_the_centre_box_with_the_ratio_clamped(h, w, box):
    # scale >= 0.9 with ratio in [3/4, 4/3] cannot fit a 10x100 image: torchvision's fallback
    # is the centre box of the whole image with its ratio clamped (10 x round(10 * 4/3) = 13)
    n = 50
    got = rrc_params(n, (h, w), (0.9, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))
    if (h, w) == (10, 11):  # this one fits (ratio 1.1): candidates are used, the fallback is not needed
        top, left, bh, bw = got
        assert torch.all(bh * bw >= 0.9 * 110 - 10) and torch.all(top + bh <= h) and torch.all(left + bw <= w)
        return
    for t, v in zip(got, box):
        assert torch.allclose(t.float(), torch.full((n,), v)), (t[:3], v)


def test_rrc_resamples_an_exact_box_without_interpolating():
    # a box of the output's size lands on pixel centres: the crop is plain slicing
    x = torch.rand(3, 2, 12, 15)
    top, left = torch.tensor([2.0, 0.0, 7.0]), torch.tensor([3.0, 9.0, 0.0])
    boxes = (top, left, torch.full((3,), 5.0), torch.full((3,), 6.0))
    flip = torch.tensor([False, True, False])
    out = random_resized_crop(x, boxes, (5, 6), flip)
    for i in range(3):
        t, l = int(top[i]), int(left[i])
        ref = x[i, :, t:t + 5, l:l + 6]
        assert torch.allclose(out[i], ref.flip(-1) if flip[i] else ref, atol=1e-5), i


# ---------------------------------------------------------------------------------- PCA lighting


def test_pca_lighting_shift_has_the_alexnet_covariance():
    # AlexNet (Krizhevsky et al. 2012, 4.1): each image gets sum_i alpha_i lambda_i p_i with
    # alpha_i ~ N(0, sigma): the shift's covariance is P diag((sigma lambda_i)^2) P^T
    n, sigma = 20_000, 0.5
    x = torch.full((n, 3, 1, 1), 128, dtype=torch.uint8)
    pipe = BatchPipeline((3, 1, 1), (3, 1, 1), (0.0,) * 3, (1.0,) * 3, AugmentConfig(pca_lighting=sigma), CPU)
    shift = (pipe(x, True, torch.Generator().manual_seed(0))[:, :, 0, 0] - 128 / 255).double().numpy()
    eigval = np.array(IMAGENET_PCA[0])
    eigvec = np.array(IMAGENET_PCA[1])
    cov = eigvec @ np.diag((sigma * eigval) ** 2) @ eigvec.T
    assert np.all(np.abs(shift.mean(0)) < 5 * np.sqrt(np.diag(cov) / n))
    # sample covariance of n normal draws: relative error ~ sqrt(2/n) on the largest direction
    got = np.cov(shift.T)
    assert np.allclose(got, cov, atol=6 * math.sqrt(2 / n) * cov.max())
    # the largest direction is the first eigenvector, with variance (sigma lambda_1)^2
    proj = shift @ eigvec[:, 0]
    assert abs(proj.var() / (sigma * eigval[0]) ** 2 - 1) < 6 * math.sqrt(2 / n)
    assert not torch.equal(pipe(x[:4], False), pipe(x[:4], True, torch.Generator().manual_seed(0)))
    assert torch.allclose(pipe(x[:4], False), torch.tensor(128 / 255))  # evaluation: no noise


def _pca_dataset(seed=0, n=40, name="t"):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (n, 1, 8, 8), generator=g).double()
    # correlated channels: G follows R, B is independent
    imgs = torch.cat([base, 0.5 * base + 60, torch.randint(0, 256, (n, 1, 8, 8), generator=g).double()], 1)
    info = DatasetInfo(name, 2, 3, (8, 8), (0.5,) * 3, (0.25,) * 3, ["a", "b"], "cifar", False)
    return InMemoryDataset(imgs.to(torch.uint8), torch.zeros(n, dtype=torch.long), ["a", "b"], info), imgs


def test_dataset_pca_is_the_eigendecomposition_of_the_pixel_covariance():
    from cnnlab.data.core import generator

    ds, _ = _pca_dataset()
    eigval, eigvec = ds.pca(max_pixels=1000)
    assert ds.pca(max_pixels=1000)[0] is eigval  # computed once per dataset
    pixels = ds.images.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy() / 255
    # the documented sample: 1000 pixels drawn (with replacement) by the generator seeded with
    # ("pca", name, n), on the 0-1 scale; its covariance decomposed by numpy
    pick = torch.randint(0, len(pixels), (1000,), generator=generator("pca", "t", 40)).numpy()
    ref_val, ref_vec = np.linalg.eigh(np.cov(pixels[pick].T))
    assert np.allclose(eigval.numpy(), np.clip(ref_val, 0, None), rtol=1e-5, atol=1e-8)
    for k in range(3):  # eigenvectors up to sign
        assert abs(abs(float(eigvec[:, k].double() @ torch.from_numpy(ref_vec[:, k]))) - 1) < 1e-5
    # and the sample represents the whole set: ~1/sqrt(1000) relative error on the largest eigenvalue
    full_val = np.linalg.eigvalsh(np.cov(pixels.T))
    assert abs(eigval[-1].item() / full_val[-1] - 1) < 0.2
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=1e-5)  # orthonormal columns


def test_dataset_pca_does_not_depend_on_the_global_random_state():
    torch.manual_seed(1)
    a = _pca_dataset()[0].pca(max_pixels=500)
    torch.manual_seed(2)
    torch.rand(10)
    b = _pca_dataset()[0].pca(max_pixels=500)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ---------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("train", [False, True])
def test_normalised_batches_have_the_declared_mean_and_std(train):
    # images whose pixels have per-channel mean m and std s (0-1 scale), normalised with
    # (m, s), come out with mean 0 and std 1 per channel -- in training (flip only) too
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 16, 16), generator=g, dtype=torch.uint8)
    x[:, 1] //= 2
    x[:, 2] = x[:, 2] // 4 + 100
    pix = x.double().permute(1, 0, 2, 3).reshape(3, -1) / 255
    m, s = tuple(pix.mean(1).tolist()), tuple(pix.std(1, unbiased=False).tolist())
    pipe = BatchPipeline((3, 16, 16), (3, 16, 16), m, s, AugmentConfig(flip=True), CPU)
    out = pipe(x, train, torch.Generator().manual_seed(1)).double().permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.allclose(out.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(out.std(1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)


def test_gray_to_rgb_and_rgb_to_gray_normalise_with_adapted_statistics():
    g = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (4, 1, 5, 5), generator=g, dtype=torch.uint8)
    pipe = BatchPipeline((1, 5, 5), (3, 5, 5), (0.3,), (0.2,), None, CPU)
    out = pipe(gray, False)
    ref = (gray.double() / 255 - 0.3) / 0.2
    assert out.shape == (4, 3, 5, 5) and torch.allclose(out.double(), ref.expand(-1, 3, -1, -1), atol=1e-5)
    rgb = torch.randint(0, 256, (4, 3, 5, 5), generator=g, dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    pipe = BatchPipeline((3, 5, 5), (1, 5, 5), mean, std, None, CPU)
    luma = np.array(LUMA)
    y = np.einsum("c,nchw->nhw", luma, rgb.double().numpy() / 255)
    ref = (y - luma @ np.array(mean)) / (luma @ np.array(std))  # ITU-R 601 luma of the mean and std
    got = pipe(rgb, False)
    assert got.shape == (4, 1, 5, 5) and np.allclose(got[:, 0].double().numpy(), ref, atol=1e-5)


# ---------------------------------------------------------------------------------- size adaptation


def test_padding_centres_with_the_odd_pixel_on_the_bottom_right():
    x = torch.arange(1, 5 * 7 + 1, dtype=torch.uint8).view(1, 1, 5, 7)
    out = adapt_size(x, (8, 8), "pad")  # 3 rows: 1 above, 2 below; 1 column: 0 left, 1 right
    ref = np.zeros((8, 8), dtype=np.uint8)
    ref[1:6, 0:7] = x[0, 0].numpy()
    assert np.array_equal(out[0, 0].numpy(), ref)


def test_auto_pads_up_to_a_quarter_of_the_native_size_and_no_more():
    assert size_plan((28, 28), (35, 35)) == "pad"  # 7 = 28 // 4
    assert size_plan((28, 28), (36, 36)) == "resize"
    assert size_plan((28, 28), (28, 35)) == "pad" and size_plan((28, 28), (29, 36)) == "resize"
    assert size_plan((28, 28), (27, 28)) == "resize"  # smaller in one side: cannot pad
    assert size_plan((28, 28), (64, 64), "pad") == "pad" and size_plan((28, 28), (30, 30), "resize") == "resize"


# ---------------------------------------------------------------------------------- edge cases of the geometry


@pytest.mark.parametrize("h,w,p", [(2, 5, 1), (1, 4, 0), (3, 1, 0), (2, 2, 1)])
def test_reflect_crop_of_tiny_images_matches_numpy_pad(h, w, p):
    x = torch.arange(6 * h * w, dtype=torch.uint8).view(6, 1, h, w)
    from cnnlab.data.augment import crop_flip

    g = torch.Generator().manual_seed(0)
    top, left = random_crop_params(6, (h, w), (h, w), p, g)
    flip = torch.tensor([True, False] * 3)
    out = crop_flip(x, top, left, flip, (h, w), p, "reflect")
    for i in range(6):
        padded = np.pad(x[i, 0].numpy(), p, mode="reflect")  # numpy's 'reflect' does not repeat the edge
        ref = padded[int(top[i]): int(top[i]) + h, int(left[i]): int(left[i]) + w]
        assert np.array_equal(out[i, 0].numpy(), ref[:, ::-1] if flip[i] else ref), i


def test_rrc_fallback_clamps_the_ratio_by_hand():
    r = (3 / 4, 4 / 3)
    from cnnlab.data.augment import rrc_fallback

    assert rrc_fallback(10, 10, r) == (10, 10)  # in range: the whole image
    assert rrc_fallback(30, 40, r) == (30, 40) and rrc_fallback(40, 30, r) == (40, 30)  # on the bounds
    assert rrc_fallback(10, 100, r) == (10, 13)  # too wide: width = 10 * 4/3
    assert rrc_fallback(100, 10, r) == (13, 10)  # too tall: height = 10 / (3/4)
    assert rrc_fallback(20, 50, (0.5, 2.0)) == (20, 40) and rrc_fallback(50, 20, (0.5, 2.0)) == (40, 20)


def test_rrc_boxes_on_the_edges_of_what_fits():
    g = torch.Generator().manual_seed(0)
    # 1x1 boxes (area 1/16 of 4x4, ratio 1) fit and are used, never widened to the fallback
    _, _, bh, bw = rrc_params(200, (4, 4), (1 / 16, 1 / 16), (1.0, 1.0), g)
    assert torch.all(bh == 1) and torch.all(bw == 1)
    # a box as wide (or as tall) as the image fits
    top, left, bh, bw = rrc_params(200, (40, 40), (0.75, 0.75), (4 / 3, 4 / 3), g)
    assert torch.all(bw == 40) and torch.all(bh == 30) and torch.all(left == 0)
    assert len(set(top.tolist())) == 11  # a random box (the fallback would always be centred)
    top, _, bh, bw = rrc_params(200, (40, 40), (0.75, 0.75), (3 / 4, 3 / 4), g)
    assert torch.all(bh == 40) and torch.all(bw == 30) and torch.all(top == 0)
    # a box that rounds to zero pixels never is used: the fallback is the whole image
    _, _, bh, bw = rrc_params(200, (3, 3), (0.01, 0.02), (1.0, 1.0), g)
    assert torch.all(bh == 3) and torch.all(bw == 3)
    # ... also when only one side rounds to zero (area ~1 pixel, ratio 1/5: 0 wide, 2 tall)
    _, _, bh, bw = rrc_params(200, (3, 3), (0.1, 0.12), (0.2, 0.2), g)
    assert torch.all(bw == 1) and torch.all(bh == 3)  # fallback: height 3, width round(3 * 0.2)
    _, _, bh, bw = rrc_params(200, (3, 3), (0.1, 0.12), (5.0, 5.0), g)
    assert torch.all(bh == 1) and torch.all(bw == 3)


def test_rrc_with_one_try_mixes_random_and_fallback_boxes_per_sample():
    # one candidate per sample: some fit, some do not; each sample is decided on its own
    n, h, w = 4000, 20, 60
    top, left, bh, bw = rrc_params(n, (h, w), (0.3, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(4), tries=1)
    assert torch.all(top >= 0) and torch.all(left >= 0) and torch.all(top + bh <= h) and torch.all(left + bw <= w)
    fallback = (bh == 20) & (bw == round(20 * 4 / 3)) & (left == (60 - 27) / 2)
    assert 0.2 < fallback.double().mean() < 0.95  # both kinds occur
    assert torch.all(top[fallback] == 0)
    # the random corners of the boxes that fit are independent of each other
    fit = ~fallback & (bh < h) & (bw < w)
    u = top[fit] / (h - bh[fit] + 1)
    v = left[fit] / (w - bw[fit] + 1)
    assert abs(np.corrcoef(u.numpy(), v.numpy())[0, 1]) < 5 / math.sqrt(int(fit.sum()))


def test_rrc_corners_are_independent():
    n = 11_000
    top, left, _, _ = rrc_params(n, (20, 20), (0.25, 0.25), (1.0, 1.0), torch.Generator().manual_seed(5))
    assert abs(np.corrcoef(top.numpy(), left.numpy())[0, 1]) < 5 / math.sqrt(n)


def test_upsampling_the_whole_image_repeats_the_border_not_zeros():
    # torchvision's resize of a constant image is constant: the samples nearest the border
    # (a quarter pixel outside the first pixel centre when upsampling 2x) repeat the edge
    x = torch.full((1, 1, 4, 4), 7.0)
    whole = (torch.zeros(1), torch.zeros(1), torch.full((1,), 4.0), torch.full((1,), 4.0))
    assert torch.allclose(random_resized_crop(x, whole, (8, 8)), torch.full((1, 1, 8, 8), 7.0))


# ---------------------------------------------------------------------------------- image folders


def test_folder_rrc_box_area_ratio_and_corner_statistics():
    import random

    from cnnlab.data.folder import _rrc_box

    rng = random.Random(0)
    n = 4000
    # square boxes of a uniform area fraction in (0.25, 1) on a 120x120 image
    boxes = np.array([_rrc_box(120, 120, (0.25, 1.0), (1.0, 1.0), rng) for _ in range(n)])
    x0, y0, cw, ch = boxes.T
    assert np.all(cw == ch) and np.all(x0 + cw <= 120) and np.all(y0 + ch <= 120) and x0.min() >= 0
    frac = cw * ch / 120 ** 2
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(frac, q) - (0.25 + 0.75 * q)) < 5 * math.sqrt(q * (1 - q) / n) * 0.75 + 0.01
    # log aspect ratio uniform in log(ratio), width = sqrt(area * aspect)
    boxes = np.array([_rrc_box(400, 300, (0.1, 0.1), (0.5, 2.0), rng) for _ in range(n)])
    log_r = np.log(boxes[:, 2] / boxes[:, 3])
    sd = 2 * math.log(2) / math.sqrt(12)
    assert abs(log_r.mean()) < 5 * sd / math.sqrt(n) + 0.01 and abs(log_r.std() - sd) < 0.02
    assert np.all(np.abs(boxes[:, 2] * boxes[:, 3] / 120_000 - 0.1) < 0.01)
    # 10x10 boxes on 20x20: corners uniform on 0..10, independently
    boxes = np.array([_rrc_box(20, 20, (0.25, 0.25), (1.0, 1.0), rng) for _ in range(11_000)])
    for corner in (boxes[:, 0], boxes[:, 1]):
        f = np.bincount(corner, minlength=11) / len(corner)
        assert len(f) == 11 and _within(f, np.full(11, 1 / 11), len(corner))
    assert abs(np.corrcoef(boxes[:, 0], boxes[:, 1])[0, 1]) < 5 / math.sqrt(11_000)


def test_folder_rrc_box_edges_and_fallback():
    import random

    from cnnlab.data.folder import _rrc_box

    rng = random.Random(1)
    assert all(_rrc_box(4, 4, (1 / 16, 1 / 16), (1.0, 1.0), rng)[2:] == (1, 1) for _ in range(50))
    tops, lefts = set(), set()
    for _ in range(100):  # boxes as wide (or as tall) as the image fit, at a random position
        x0, y0, cw, ch = _rrc_box(40, 40, (0.75, 0.75), (4 / 3, 4 / 3), rng)
        assert (cw, ch, x0) == (40, 30, 0)
        tops.add(y0)
        x0, y0, cw, ch = _rrc_box(40, 40, (0.75, 0.75), (3 / 4, 3 / 4), rng)
        assert (cw, ch, y0) == (30, 40, 0)
        lefts.add(x0)
    assert len(tops) == len(lefts) == 11
    # nothing fits: the centre box of the whole image, its ratio clamped (by hand: 10 x 13, 13 x 10)
    box = _rrc_box(100, 10, (0.9, 1.0), (3 / 4, 4 / 3), rng)  # (x0, y0, w, h), whole pixels
    assert box == (43, 0, 13, 10) and all(type(v) is int for v in box)
    box = _rrc_box(10, 100, (0.9, 1.0), (3 / 4, 4 / 3), rng)
    assert box == (0, 43, 10, 13) and all(type(v) is int for v in box)
    # one side rounding to zero pixels: not a box, the fallback is used
    assert all(_rrc_box(3, 3, (0.1, 0.12), (0.2, 0.2), rng) == (1, 0, 1, 3) for _ in range(20))
    assert all(_rrc_box(3, 3, (0.1, 0.12), (5.0, 5.0), rng) == (0, 1, 3, 1) for _ in range(20))
    assert _rrc_box(3, 3, (0.01, 0.02), (1.0, 1.0), rng) == (0, 0, 3, 3)  # boxes of 0 pixels never used


def test_folder_random_resized_crop_decodes_the_box(tmp_path):
    import random

    from cnnlab.data.folder import _rrc_box

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(img).save(tmp_path / "a.png")
    scale, ratio = (0.2, 0.6), (0.5, 2.0)
    for seed in range(5):
        x0, y0, cw, ch = _rrc_box(50, 30, scale, ratio, random.Random(seed))
        ref = Image.fromarray(img).crop((x0, y0, x0 + cw, y0 + ch)).resize((12, 8), Image.BILINEAR)
        out = decode_image(str(tmp_path / "a.png"), (8, 12), rrc=(scale, ratio), sample_seed=seed)
        # Pillow resizes the box with its own (box-aware) filter: within a grey level or two of crop + resize
        assert out.shape == (3, 8, 12) and np.abs(out.permute(1, 2, 0).numpy().astype(int) - np.asarray(ref).astype(int)).mean() < 3


def test_folder_images_of_the_input_shape_are_adapted_like_in_memory_ones(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data.augment import adapt_size as adapt

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "g.png")
    x = torch.from_numpy(img)[None, None]
    pad = decode_image(str(tmp_path / "g.png"), (32, 32), channels=1)  # MNIST into LeNet: padded
    assert pad.dtype == torch.uint8 and torch.equal(pad, adapt(x, (32, 32), "pad")[0])
    up = decode_image(str(tmp_path / "g.png"), (56, 56), channels=1)  # resized, rounded to uint8
    ref = adapt(x.float(), (56, 56), "resize")[0].round().clamp(0, 255).to(torch.uint8)
    assert up.dtype == torch.uint8 and torch.equal(up, ref)
    same = decode_image(str(tmp_path / "g.png"), (28, 28), channels=1)
    assert torch.equal(same, x[0])
    # a centre crop fraction below 1 takes the resize-and-crop path instead
    crop = decode_image(str(tmp_path / "g.png"), (28, 28), channels=1, eval_crop=0.875)
    assert crop.shape == (1, 28, 28) and not torch.equal(crop, x[0])


def test_folder_statistics_of_rgb_images_per_channel(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data import load_dataset

    rng = np.random.default_rng(2)
    for k in range(2):
        (tmp_path / f"c{k}").mkdir()
        for i in range(6):
            img = np.stack([rng.integers(0, 256, (6, 7)), rng.integers(0, 64, (6, 7)),
                            np.full((6, 7), 200)], -1).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / f"c{k}" / f"{i}.png")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=6)
    # every training image is in the sample (fewer than 256): mean/std of their pixels, by numpy
    chosen = np.concatenate([np.asarray(Image.open(p)).reshape(-1, 3) / 255 for p, _ in ds.samples])
    assert ds.info.channels == 3 and len(ds.samples) < 12  # the 10% hold-out is left out
    assert np.allclose(ds.info.mean, chosen.mean(0), atol=1e-4)
    assert np.allclose(ds.info.std[:2], chosen.std(0)[:2], atol=1e-4)
    assert ds.info.std[2] == 1e-3  # a constant channel: the floor, not 0 (normalising divides by it)


def test_an_official_validation_folder_needs_train_and_test(tmp_path):
    from cnnlab.data.folder import official_val_dir

    (tmp_path / "train").mkdir()
    (tmp_path / "validation").mkdir()
    assert official_val_dir(tmp_path) is None  # train/ and validation/ but no test/: not a 3-way split
    (tmp_path / "test").mkdir()
    assert official_val_dir(tmp_path) == tmp_path / "validation"
    (tmp_path / "train").rmdir()
    assert official_val_dir(tmp_path) is None


def test_folder_eval_resize_and_centre_crop_cover_the_crop_fraction(tmp_path):
    # a 160x80 image whose red channel is its column and green its row (0-255 over the image):
    # shorter side to 32 / crop_pct = 64 (x0.8 -> 128x64), then the centre 32x32, i.e. original
    # columns 60..100 of 160 and rows 20..60 of 80
    Image = pytest.importorskip("PIL.Image")
    xs, ys = np.meshgrid(np.arange(160), np.arange(80))
    img = np.stack([xs * 255 / 159, ys * 255 / 79, np.zeros_like(xs)], -1).round().astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "grad.png")
    out = decode_image(str(tmp_path / "grad.png"), (32, 32), eval_crop=0.5).double()
    col = out[0].mean(0).numpy() * 159 / 255  # original column of each output column
    row = out[1].mean(1).numpy() * 79 / 255
    # output pixel j samples the original at (48 + j + 0.5) / 0.8 - 0.5 (columns), (16 + j + 0.5) / 0.8 - 0.5 (rows)
    assert abs(col[0] - 60.1) < 1.5 and abs(col[-1] - 98.9) < 1.5
    assert abs(row[0] - 20.1) < 1.5 and abs(row[-1] - 58.9) < 1.5
    # crop_pct 1: shorter side -> 32 (x0.4 -> 64x32), centre 32 columns: (16 + j + 0.5) / 0.4 - 0.5, all rows
    whole = decode_image(str(tmp_path / "grad.png"), (32, 32), eval_crop=1.0).double()
    col = whole[0].mean(0).numpy() * 159 / 255
    row = whole[1].mean(1).numpy() * 79 / 255
    assert abs(col[0] - 40.75) < 1.5 and abs(col[-1] - 118.25) < 1.5
    assert abs(row[0] - 0.75) < 1.5 and abs(row[-1] - 78.25) < 1.5


def test_folder_resize_keeps_black_black(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    img = np.zeros((28, 28), np.uint8)
    img[10:18, 10:18] = 255
    Image.fromarray(img).save(tmp_path / "b.png")
    up = decode_image(str(tmp_path / "b.png"), (56, 56), channels=1)
    assert up.min() == 0 and up.max() == 255


def test_folder_training_crops_are_random_per_sample_and_epoch(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data import load_dataset, make_loader

    rng = np.random.default_rng(3)
    for k in range(2):
        (tmp_path / f"c{k}").mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"c{k}" / f"{i}.png")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=16, mean=[0.5] * 3, std=[0.25] * 3)
    aug = AugmentConfig(random_resized_crop=True, scale=(0.1, 0.3))
    loader = make_loader(ds, batch_size=len(ds), train=True, augment=aug, num_workers=0)
    # batches in sample order (training shuffles): x[e][i] is sample i in epoch e
    x = []
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        batch = next(iter(loader))[0]
        order = loader.indices(epoch)[0]
        x.append(batch[torch.argsort(order)])
    eval_x = next(iter(make_loader(ds, batch_size=len(ds), train=False, num_workers=0)))[0]
    assert x[0].shape == eval_x.shape == (len(ds), 3, 16, 16)
    for i in range(len(ds)):  # each sample: a random box (not the evaluation's view), a new one each epoch
        assert not torch.allclose(x[0][i], eval_x[i]) and not torch.allclose(x[0][i], x[1][i]), i


def test_folder_large_inputs_are_evaluated_on_the_centre_crop(tmp_path):
    # 128 pixels and more: resize to 128 / 0.875 and take the centre (ResNet/Inception evaluation)
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data import load_dataset, make_loader

    xs, _ = np.meshgrid(np.arange(150), np.arange(150))
    img = np.stack([xs * 255 / 149] * 3, -1).round().astype(np.uint8)
    for k in range(2):
        (tmp_path / f"c{k}").mkdir()
        for i in range(2):
            Image.fromarray(img).save(tmp_path / f"c{k}" / f"{i}.png")
    ds = load_dataset("imagefolder", "train", root=tmp_path, image_size=128, mean=[0.0] * 3, std=[1.0] * 3)
    x = next(iter(make_loader(ds, batch_size=2, train=False, num_workers=0)))[0]
    ref = decode_image(str(tmp_path / "c0" / "0.png"), (128, 128), eval_crop=0.875)
    assert torch.allclose(x[0] * 255, ref.float(), atol=1e-3)
    assert x[0, 0, 0, 0] * 255 > 5  # the left edge of the image is cropped away


def test_folder_subset_and_palette_images(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data import DataError, load_dataset

    for k in range(2):
        (tmp_path / f"c{k}").mkdir()
        for i in range(3):
            im = Image.fromarray(np.full((5, 5), 40 * (i + k), np.uint8)).convert("P")  # a grey palette
            im.save(tmp_path / f"c{k}" / f"{i}.png")
    ds = load_dataset("imagefolder", root=tmp_path, crop_pct=0.9)
    assert ds.info.channels == 1  # palette images whose colours are all grey are grayscale
    sub = ds.subset([1, 0])
    assert sub.samples == [ds.samples[1], ds.samples[0]] and sub.classes == ds.classes and sub.info == ds.info
    assert sub.crop_pct == 0.9 and sub.split == ds.split and sub.root == ds.root == str(tmp_path)
    with pytest.raises(DataError, match="out of range"):
        ds.subset([len(ds)])
    x, label = ds[0]
    assert x.shape == (1, 5, 5) and label == ds.samples[0][1]
    from cnnlab.data.folder import _palette_is_gray

    grey = [v for i in range(256) for v in (i, i, i)]
    for k, colour in ((1, (0, 255, 0)), (1, (255, 0, 0)), (255, (7, 7, 8))):  # green, red, the last entry
        im = Image.new("P", (2, 2))
        pal = list(grey)
        pal[3 * k: 3 * k + 3] = colour
        im.putpalette(pal)
        assert not _palette_is_gray(im), (k, colour)
        pal[3 * k: 3 * k + 3] = (9, 9, 9)
        im.putpalette(pal)
        assert _palette_is_gray(im)
    coloured = Image.new("P", (5, 5))
    coloured.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    coloured.save(tmp_path / "c0" / "9.png")
    assert load_dataset("imagefolder", root=tmp_path).info.channels == 3
