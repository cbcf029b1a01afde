"""Every pixel format Pillow reads decodes to the values a person would expect: each
expectation here is written from the format's meaning, not from Pillow's conversion."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.folder import decode_image


def _decode(tmp_path, im: Image.Image, channels: int, ext: str = "png") -> torch.Tensor:
    path = tmp_path / f"x.{ext}"
    im.save(path)
    return decode_image(str(path), (im.height, im.width), channels=channels)


def test_palette_images_take_their_palette_colours(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, index 1 blue
    im.putpixel((1, 0), 1)
    x = _decode(tmp_path, im, 3)
    assert x[:, 0, 0].tolist() == [255, 0, 0] and x[:, 0, 1].tolist() == [0, 0, 255]


def test_alpha_is_dropped_as_torchvision_does(tmp_path):
    # torchvision's image loader converts RGBA to RGB, keeping the colour under any transparency;
    # cnnlab does the same so a pretrained model sees what it was evaluated on.
    im = Image.new("RGBA", (1, 1), (10, 20, 30, 0))
    assert _decode(tmp_path, im, 3)[:, 0, 0].tolist() == [10, 20, 30]
    la = Image.new("LA", (1, 1), (77, 0))
    assert _decode(tmp_path, la, 1)[:, 0, 0].tolist() == [77]


def test_cmyk_primaries(tmp_path):
    im = Image.new("CMYK", (3, 1))
    im.putpixel((0, 0), (255, 0, 0, 0))  # full cyan: no red
    im.putpixel((1, 0), (0, 0, 0, 255))  # full black
    im.putpixel((2, 0), (0, 0, 0, 0))  # no ink: white paper
    x = _decode(tmp_path, im, 3, ext="tiff")
    assert x[:, 0, 0].tolist() == [0, 255, 255]
    assert x[:, 0, 1].tolist() == [0, 0, 0]
    assert x[:, 0, 2].tolist() == [255, 255, 255]


def test_one_bit_images_are_black_and_white(tmp_path):
    im = Image.new("1", (2, 1))
    im.putpixel((1, 0), 1)
    assert _decode(tmp_path, im, 1)[0, 0].tolist() == [0, 255]
    assert _decode(tmp_path, im, 3)[:, 0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("values, expected", [
    ([0.0, 0.5, 1.0], [0, 128, 255]),  # a 0-1 float image, the usual float convention
    ([0.0, 127.0, 255.0], [0, 127, 255]),  # floats written as 8-bit values
    ([0.0, 32767.5, 65535.0], [0, 128, 255]),  # floats written as 16-bit values
])
def test_float_images_are_scaled_by_their_range(tmp_path, values, expected):
    im = Image.fromarray(np.array([values], dtype=np.float32), "F")
    assert _decode(tmp_path, im, 1, ext="tiff")[0, 0].tolist() == expected


def test_32_bit_integer_images(tmp_path):
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), "I")
    assert _decode(tmp_path, small, 1, ext="tiff")[0, 0].tolist() == [0, 100, 255]
    deep = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.int32), "I")
    assert _decode(tmp_path, deep, 1, ext="tiff")[0, 0].tolist() == [0, 100, 255]


def test_grayscale_becomes_equal_rgb_channels(tmp_path):
    im = Image.fromarray(np.array([[3, 200]], dtype=np.uint8), "L")
    x = _decode(tmp_path, im, 3)
    assert x[:, 0, 0].tolist() == [3, 3, 3] and x[:, 0, 1].tolist() == [200, 200, 200]
