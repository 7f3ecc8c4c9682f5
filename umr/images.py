"""Image preprocessing, defined once for training and runtime (numpy + Pillow; no torch).

Every image becomes ``size x size`` RGB: palette, grey, CMYK and 16-bit images are
converted; EXIF orientation is applied; transparency is composited onto a fixed
background (emoji and icons are drawn on transparent canvases, and a model must not
see whatever happens to sit in the transparent pixels); the image is resized with
antialiasing and scaled to ``[-1, 1]``. The result is a ``float32 [3, size, size]``
array; :class:`ImagePreprocess` records the settings in a model's config and bundle.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from umr.errors import ImageError

#: Decompression-bomb guard: images with more pixels than this are refused.
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ImagePreprocess:
    """How raw images become model input; stored in configs and bundle manifests."""

    size: int = 64
    background: tuple[int, int, int] = (255, 255, 255)
    resample: str = "bicubic"
    scale: str = "[-1, 1]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["background"] = list(self.background)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocess:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(data) - {"size", "background", "resample", "scale"}
        if unknown:
            raise ImageError(f"image preprocessing: unknown keys {sorted(unknown)}")
        kw = dict(data)
        if "background" in kw:
            kw["background"] = tuple(int(c) for c in kw["background"])
        pre = cls(**kw)
        if pre.resample not in _RESAMPLE or pre.scale != "[-1, 1]" or pre.size < 8:
            raise ImageError(f"image preprocessing: unsupported settings {pre.to_dict()}")
        return pre


_RESAMPLE = {"bicubic": 3, "bilinear": 2, "lanczos": 1}


def open_image(item: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> Any:
    """A fully decoded PIL image from a path, bytes, PIL image or ``HxWxC`` uint8 array.

    Raises :class:`ImageError` naming ``name`` for corrupt, truncated or unsupported
    files and for images over ``max_pixels`` (a decompression bomb guard).
    """
    from PIL import Image

    if isinstance(item, Image.Image):
        _check_pixels(item.size, max_pixels, name)
        return item
    if isinstance(item, np.ndarray):
        return _from_array(item, name)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(item)), max_pixels, name)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise ImageError(f"{name}: {path} is not a file")
        with open(path, "rb") as fh:
            return _decode(io.BytesIO(fh.read()), max_pixels, f"{name} ({path})")
    raise ImageError(
        f"{name}: expected a path, bytes, PIL image or HxWxC uint8 array, got {type(item).__name__}"
    )


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    if size[0] * size[1] > max_pixels:
        raise ImageError(
            f"{name}: {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} "
            "(raise max_pixels if this image is legitimate)"
        )
    if size[0] < 1 or size[1] < 1:
        raise ImageError(f"{name}: empty image {size[0]}x{size[1]}")


def _decode(buf: io.BytesIO, max_pixels: int, name: str) -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(buf)
            _check_pixels(img.size, max_pixels, name)
            img.load()  # decode now: a truncated file fails here, not halfway through a batch
            return ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image in a format Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated/corrupt data
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None


def _from_array(arr: np.ndarray, name: str) -> Any:
    from PIL import Image

    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ImageError(f"{name}: arrays must be HxW or HxWxC uint8, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: array has {arr.shape[2]} channels; expected 1, 3 or 4")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name}: empty array {arr.shape}")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def to_rgb(img: Any, background: tuple[int, int, int] = (255, 255, 255)) -> Any:
    """``img`` as 8-bit RGB, with any transparency composited onto ``background``."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr * (255.0 / peak)).clip(0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")  # L, CMYK, YCbCr, F, 1 ...


def to_rgba(img: Any) -> Any:
    """``img`` as 8-bit RGBA, transparency kept (for augmentations that need the alpha);
    :func:`to_model_input` of the result equals that of ``img``."""
    if img.mode in ("RGBA", "LA", "PA", "P") or "transparency" in img.info:
        return img.convert("RGBA")
    return to_rgb(img).convert("RGBA")  # 16-bit grey, CMYK, ...: to_rgb's conversions


def to_model_input(img: Any, pre: ImagePreprocess) -> np.ndarray:
    """One PIL image -> ``float32 [3, size, size]`` in ``[-1, 1]``."""
    rgb = to_rgb(img, pre.background)
    if rgb.size != (pre.size, pre.size):
        rgb = rgb.resize((pre.size, pre.size), resample=_RESAMPLE[pre.resample], reducing_gap=2.0)
    arr = np.asarray(rgb, dtype=np.float32)
    return np.ascontiguousarray(((arr / 127.5) - 1.0).transpose(2, 0, 1))


def preprocess(
    items: list[Any], pre: ImagePreprocess, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode and preprocess every item -> ``float32 [n, 3, size, size]``.

    All items are decoded before anything is returned, so a bad item (named by its
    index) fails the whole call and nothing is embedded partially.
    """
    out = np.empty((len(items), 3, pre.size, pre.size), dtype=np.float32)
    for i, item in enumerate(items):
        out[i] = to_model_input(open_image(item, max_pixels=max_pixels, name=f"image {i}"), pre)
    return out
