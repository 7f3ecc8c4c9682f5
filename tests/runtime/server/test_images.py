"""Data-URL decoding: formats, malformed input, limits, typed errors naming the field."""

from __future__ import annotations

import base64
import io

import pytest
from umr.runtime.server.images import ImageLimits, decode_data_url

from umr.errors import ImageError

LIMITS = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)


def data_url(fmt: str = "PNG", size=(3, 2), mode: str = "RGB", mime: str | None = None) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    mime = mime or f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGBA"), ("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB")]
)
def test_decodes_common_formats_to_rgb(fmt, mode) -> None:
    img = decode_data_url(data_url(fmt, (5, 4), mode), LIMITS)
    assert img.mode == "RGB" and img.size == (5, 4)


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
