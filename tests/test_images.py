"""Image preprocessing shared by training and runtime: modes, orientation, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from umr.errors import ImageError
from umr.images import ImagePreprocess, open_image, preprocess, to_model_input, to_rgba

PRE = ImagePreprocess(size=8)


def _png(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_transparent_pixels_become_the_background() -> None:
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # red, but fully transparent
    out = to_model_input(img, PRE)
    assert out.shape == (3, 8, 8) and np.allclose(out, 1.0)  # white


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "RGB", "1"])
def test_every_mode_converts(mode: str) -> None:
    img = Image.new(mode, (5, 7))
    out = preprocess([img], PRE)
    assert out.shape == (1, 3, 8, 8) and np.isfinite(out).all()
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_sixteen_bit_grey_scales_down() -> None:
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    out = to_model_input(Image.fromarray(arr), PRE)
    assert np.allclose(out, 1.0, atol=1e-6)


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    opened = open_image(_png(img, "JPEG", exif=exif.tobytes()))
    assert opened.size == (2, 4)


def test_arrays_bytes_and_paths(tmp_path: Path) -> None:
    arr = np.zeros((6, 6, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    out = preprocess([arr, path, path.read_bytes()], PRE)
    assert np.allclose(out[0], out[1]) and np.allclose(out[1], out[2])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (b"not an image", "not an image"),
        (_png(Image.new("RGB", (32, 32)))[:60], "corrupt or truncated"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "channels"),
        (np.zeros((4, 4), dtype=np.float32), "uint8"),
        (12, "expected a path"),
        ("/no/such/file.png", "is not a file"),
    ],
)
def test_bad_items_name_their_index(item: object, message: str) -> None:
    ok = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ImageError, match=rf"image 1.*{message}"):
        preprocess([ok, item], PRE)


def test_pixel_limit_refuses_bombs() -> None:
    big = _png(Image.new("L", (300, 300)))
    with pytest.raises(ImageError, match="exceeds the limit"):
        open_image(big, max_pixels=10_000)


def test_preprocess_settings_round_trip() -> None:
    pre = ImagePreprocess(size=32, background=(0, 0, 0))
    assert ImagePreprocess.from_dict(pre.to_dict()) == pre
    with pytest.raises(ImageError, match="unknown keys"):
        ImagePreprocess.from_dict({"sise": 3})


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "RGB", "CMYK", "I;16"])
def test_to_rgba_keeps_what_the_model_sees(mode: str) -> None:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), mode="RGBA")
    img = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    pre = ImagePreprocess(size=16)
    assert to_rgba(img).mode == "RGBA"
    np.testing.assert_array_equal(to_model_input(to_rgba(img), pre), to_model_input(img, pre))
