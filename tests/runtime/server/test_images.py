"""Data-URL decoding: formats, parity with image files, malformed input, limits, typed errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from umr.runtime.server.images import ImageLimits, decode_data_url

from umr.errors import ImageError
from umr.images import ImagePreprocess, preprocess, to_model_input

LIMITS = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)
PRE = ImagePreprocess(size=16)


def data_url(fmt: str = "PNG", size=(3, 2), mode: str = "RGB", mime: str | None = None) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    mime = mime or f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode()


def encoded(img, fmt: str = "PNG", **save) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def as_url(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(payload).decode()


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGBA"), ("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB")]
)
def test_decodes_common_formats_fully(fmt, mode) -> None:
    img = decode_data_url(data_url(fmt, (5, 4), mode), LIMITS)
    assert img.size == (5, 4)
    assert to_model_input(img, PRE).shape == (3, 16, 16)


def _transparent_emoji():  # type: ignore[no-untyped-def]
    """RGBA with junk colour under fully transparent pixels, as emoji files have."""
    from PIL import Image

    img = Image.new("RGBA", (24, 20), (0, 255, 0, 0))  # transparent, but green underneath
    img.paste((200, 30, 30, 255), (4, 4, 20, 16))
    return img


def _rotated_jpeg() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (30, 10), (10, 10, 10))
    img.paste((250, 250, 250), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return encoded(img, "JPEG", exif=exif.tobytes())


@pytest.mark.parametrize(
    "payload",
    [encoded(_transparent_emoji()), _rotated_jpeg(), encoded(_transparent_emoji(), "GIF")],
    ids=["rgba-png", "exif-jpeg", "gif-transparency"],
)
def test_same_model_input_as_the_file(payload) -> None:
    # The server must hand the Embedder what it gets from the same file on disk:
    # transparency composited on the model's background, EXIF orientation applied.
    from_url = preprocess([decode_data_url(as_url(payload), LIMITS)], PRE)
    from_file = preprocess([payload], PRE)
    np.testing.assert_array_equal(from_url, from_file)


def test_transparent_pixels_are_not_their_hidden_colour() -> None:
    img = decode_data_url(as_url(encoded(_transparent_emoji())), LIMITS)
    corner = to_model_input(img, PRE)[:, 0, 0]
    np.testing.assert_allclose(corner, [1.0, 1.0, 1.0])  # white background, not green


def test_mime_type_is_not_trusted_and_params_are_allowed() -> None:
    url = data_url("PNG").replace("data:image/png;", "data:image/jpeg;charset=x;")
    assert decode_data_url(url, LIMITS).size == (3, 2)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "not fetched"),
        ("iVBORw0KGgo=", "expected a data URL"),
        ("data:image/png,rawdata", "expected a data URL"),
        ("data:image/png;base64,", "empty"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "cannot decode"),
    ],
)
def test_malformed_urls_raise_image_error_naming_the_field(url, message) -> None:
    with pytest.raises(ImageError, match=message) as info:
        decode_data_url(url, LIMITS, field="input[3].image")
    assert str(info.value).startswith("input[3].image: ")


def test_truncated_image_is_refused() -> None:
    url = data_url("PNG", (64, 64))
    payload = base64.b64decode(url.split(",", 1)[1])
    cut = "data:image/png;base64," + base64.b64encode(payload[: len(payload) // 2]).decode()
    with pytest.raises(ImageError, match="cannot decode"):
        decode_data_url(cut, LIMITS)


def test_unlisted_format_is_refused() -> None:
    with pytest.raises(ImageError, match="cannot decode"):
        decode_data_url(data_url("TIFF", mime="image/tiff"), LIMITS)


def test_limits() -> None:
    with pytest.raises(ImageError, match="pixels"):
        decode_data_url(data_url("PNG", (20, 10)), ImageLimits(1 << 20, 199))
    with pytest.raises(ImageError, match="larger than"):
        decode_data_url(data_url("PNG", (20, 10)), ImageLimits(10, 1 << 20))
