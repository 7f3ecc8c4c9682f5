"""Decoding ``data:image/...;base64,...`` URLs into PIL images, with limits.

Only data URLs are accepted: fetching ``http(s)://`` URLs would let any client make
the server issue requests (SSRF) and wait on third parties. Checks run cheapest
first (URL shape, encoded size, header dimensions) so a decompression bomb is refused
before a single pixel is decoded.

The image is handed on in its own mode (RGBA, P, L, ...), EXIF orientation applied,
exactly as :func:`umr.images.open_image` hands on a file: the bundle's preprocessing
(:mod:`umr.images`) composites transparency onto its background, so a data URL and the
same file on disk give the same vector.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

from umr.errors import ImageError

_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+)?((?:;[A-Za-z0-9=._+-]+)*);base64,", re.ASCII)
#: Formats Pillow decodes safely and that users send; others (EPS runs Ghostscript) are refused.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one image: encoded bytes and decoded pixels (width x height)."""

    max_bytes: int
    max_pixels: int


def decode_data_url(url: str, limits: ImageLimits, field: str = "image"):  # type: ignore[no-untyped-def]
    """The decoded ``PIL.Image.Image`` in ``url``, or ``ImageError`` saying what is wrong.

    ``field`` names the request field in messages (``input[2].image``).
    """
    payload = _payload(url, limits, field)
    return _open(payload, limits, field)


def _payload(url: str, limits: ImageLimits, field: str) -> bytes:
    match = _DATA_URL.match(url)
    if match is None:
        if url.startswith(("http://", "https://")):
            raise ImageError(f"{field}: image URLs are not fetched; send a base64 data URL")
        raise ImageError(f"{field}: expected a data URL 'data:image/png;base64,...'")
    body = url[match.end() :]
    # base64 inflates by 4/3; refuse before decoding anything oversized
    if len(body) > (limits.max_bytes * 4) // 3 + 4:
        raise ImageError(f"{field}: image is larger than {limits.max_bytes} bytes")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{field}: image data is not valid base64") from None
    if not data:
        raise ImageError(f"{field}: image data is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(f"{field}: image is larger than {limits.max_bytes} bytes")
    return data


def _open(data: bytes, limits: ImageLimits, field: str):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageOps

    try:
        # Pillow warns past ~89 M pixels and refuses past ~179 M; the limit here is
        # checked right after, from the header, before anything is decoded.
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageError(f"{field}: image has no pixels ({width}x{height})")
        if width * height > limits.max_pixels:
            raise ImageError(
                f"{field}: image is {width}x{height} = {width * height} pixels; "
                f"the limit is {limits.max_pixels}"
            )
        img.seek(0)  # first frame of an animation
        img.load()  # decodes now; truncated or corrupt data fails here, not in a batch
        return ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own cap (~179 M pixels) came first
        raise ImageError(
            f"{field}: image has more pixels than Pillow will open; "
            f"the limit is {limits.max_pixels} pixels"
        ) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, ...
        kind = type(exc).__name__
        raise ImageError(f"{field}: cannot decode image ({kind}); expected {FORMATS}") from None
