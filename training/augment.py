"""Image augmentation for style transfer: users' images are not drawn in our styles.

Scale/shift, blur, stroke width, colour, grayscale and outline-only renderings, each
with its own probability. ``keep_colour`` turns off everything that changes hue or
saturation: a skin-tone task is *about* colour.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from umr.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (0 disables) and strengths of each augmentation."""

    p_scale: float = 0.5
    p_blur: float = 0.15
    p_stroke: float = 0.2
    p_colour: float = 0.3
    p_grayscale: float = 0.1
    p_outline: float = 0.1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        names = {f.name for f in fields(cls)}
        bad = sorted(set(data) - names)
        if bad:
            raise ConfigError(f"augment: unknown keys {bad}; known: {sorted(names)}")
        cfg = cls(**data)
        if any(not 0.0 <= getattr(cfg, n) <= 1.0 for n in names):
            raise ConfigError("augment: every probability must be within [0, 1]")
        return cfg


NO_AUGMENT = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def augment(img: Any, cfg: AugmentConfig, rng: np.random.Generator, keep_colour: bool) -> Any:
    """A randomly restyled copy of an RGBA PIL image (drawn on a transparent canvas)."""
    from PIL import ImageFilter

    if rng.random() < cfg.p_scale:
        img = _scale_shift(img, rng)
    if rng.random() < cfg.p_stroke:
        img = rank3(img, np.maximum if rng.random() < 0.5 else np.minimum)
    if rng.random() < cfg.p_blur:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    if not keep_colour:
        if rng.random() < cfg.p_outline:
            img = _outline(img)
        elif rng.random() < cfg.p_grayscale:
            img = _grayscale(img)
        elif rng.random() < cfg.p_colour:
            img = _colour(img, rng)
    return img


def rank3(img: Any, op: np.ufunc) -> Any:
    """PIL's ``MaxFilter(3)`` (``op=np.maximum``) or ``MinFilter(3)`` (``np.minimum``) of
    an RGBA, RGB or L image, bit for bit (edges replicated, each band apart), in NumPy,
    because PIL's filter showed in profiles of a training step's image preparation (no
    benchmark in bench/ times the two). A 3x3 max is a max over 3 rows of a max over 3
    columns."""
    from PIL import Image

    a = np.asarray(img)
    a = a if a.ndim == 3 else a[:, :, None]
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = a.shape[:2]
    cols = op(op(p[:, 0:w], p[:, 1 : w + 1]), p[:, 2 : w + 2])
    out = op(op(cols[0:h], cols[1 : h + 1]), cols[2 : h + 2])
    return Image.fromarray(out[:, :, 0] if out.shape[2] == 1 else out)


def _scale_shift(img: Any, rng: np.random.Generator) -> Any:
    from PIL import Image

    w, h = img.size
    s = float(rng.uniform(0.7, 1.0))
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    small = img.resize((nw, nh), Image.Resampling.BICUBIC)
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    x = int(rng.integers(0, w - nw + 1))
    y = int(rng.integers(0, h - nh + 1))
    canvas.paste(small, (x, y))
    return canvas


def _grayscale(img: Any) -> Any:
    from PIL import Image

    grey = img.convert("LA").convert("RGBA")
    return Image.merge("RGBA", (*grey.split()[:3], img.split()[3]))


def _colour(img: Any, rng: np.random.Generator) -> Any:
    from PIL import Image, ImageEnhance

    rgb = img.convert("RGB")
    rgb = ImageEnhance.Color(rgb).enhance(float(rng.uniform(0.5, 1.5)))
    rgb = ImageEnhance.Brightness(rgb).enhance(float(rng.uniform(0.8, 1.2)))
    rgb = ImageEnhance.Contrast(rgb).enhance(float(rng.uniform(0.8, 1.2)))
    return Image.merge("RGBA", (*rgb.split(), img.split()[3]))


def _outline(img: Any) -> Any:
    """Only the shape's edges, drawn black: a line-art rendering of any image."""
    from PIL import Image, ImageChops, ImageFilter

    alpha = img.split()[3]
    grey = img.convert("L")
    edges = ImageChops.lighter(
        alpha.filter(ImageFilter.FIND_EDGES), grey.filter(ImageFilter.FIND_EDGES)
    ).point(lambda v: 255 if v > 40 else 0)
    black = Image.new("RGBA", img.size, (0, 0, 0, 255))
    out = Image.new("RGBA", img.size, (0, 0, 0, 0))
    out.paste(black, mask=edges)
    return out
