"""The items a multimodal export is checked on: texts, images and text+image pairs.

Real items come from a records dataset when one is given (the emoji test split: names,
instructions, emoji and icon images); without one the export still works, on the
built-in parity sentences and synthetic images drawn here (transparent canvases with
coloured shapes, of varied sizes and aspect ratios so resizing is exercised). Parity
and calibration items never overlap: calibration takes other records, or another seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from umr.training.data.records import Side, read_records

from umr.errors import ExportError

KINDS = ("text", "image", "text+image")
_MODALITY = {"t": "text", "i": "image", "it": "text+image"}
DEFAULT_DATA = Path("artifacts/data/emoji")
"""Where ``umr data build`` writes the emoji dataset (relative to the working directory)."""
_SPLIT = "test.jsonl"
_INSTRUCTIONS = (
    "Find the image of this emoji or icon.",
    "Find the name of the emoji or icon in this image.",
    "Represent this sentence for retrieval:",
)


def default_data_dir() -> Path | None:
    """:data:`DEFAULT_DATA` if it holds the emoji test split, else None (synthetic items)."""
    return DEFAULT_DATA if (DEFAULT_DATA / _SPLIT).is_file() else None


def parity_items(
    work_dir: Path, data_dir: str | os.PathLike[str] | None, n: int = 48
) -> dict[str, list[Side]]:
    """``n`` items per kind in :data:`KINDS` for the parity gates."""
    return _items(work_dir / "parity-images", data_dir, n, offset=0)


def calibration_items(
    work_dir: Path, data_dir: str | os.PathLike[str] | None, n: int = 32
) -> dict[str, list[Side]]:
    """``n`` items per kind for int8 calibration, disjoint from :func:`parity_items`."""
    return _items(work_dir / "calibration-images", data_dir, n, offset=1)


def _items(
    image_dir: Path, data_dir: str | os.PathLike[str] | None, n: int, offset: int
) -> dict[str, list[Side]]:
    from umr.export.sentences import PARITY_TEXTS

    texts = list(PARITY_TEXTS) if offset == 0 else _calibration_texts()
    if data_dir is not None:  # dataset texts are names: add sentences, long ones included
        items = _dataset_items(Path(data_dir) / _SPLIT, n, offset)
        half = n // 2
        items["text"] = items["text"][:half] + [_side(texts[i], None, i) for i in range(n - half)]
        return items
    images = synthetic_images(image_dir, n, seed=offset)
    short = sorted(texts, key=len)[: max(n, 1)]
    return {
        "text": [_side(texts[i % len(texts)], None, i) for i in range(n)],
        "image": [_side(None, images[i], i) for i in range(n)],
        "text+image": [_side(short[i % len(short)], images[-1 - i], i) for i in range(n)],
    }


def _side(text: str | None, image: Path | None, i: int) -> Side:
    """Every third item carries an instruction (attended to, left out of the pooling)."""
    instruction = _INSTRUCTIONS[(i // 3) % len(_INSTRUCTIONS)] if i % 3 == 2 else None
    return Side(text=text, image=image, instruction=instruction)


def _calibration_texts() -> list[str]:
    from umr.export.smooth import calibration_texts

    return calibration_texts()


def _dataset_items(path: Path, n: int, offset: int) -> dict[str, list[Side]]:
    """Evenly spaced distinct sides of each modality from a records file."""
    by_kind: dict[str, dict[tuple[object, ...], Side]] = {k: {} for k in KINDS}
    for rec in read_records(path, check_images=False):
        for side in (rec.query, rec.positive):
            key = (side.text, side.image, side.instruction)
            by_kind[_MODALITY[side.modality]].setdefault(key, side)
    out = {}
    for kind, sides in by_kind.items():
        pool = [s for s in sides.values() if s.image is None or s.image.is_file()]
        if len(pool) < 2 * n:
            raise ExportError(
                f"{path}: only {len(pool)} {kind} items with their images; need {2 * n}"
            )
        step = len(pool) // (2 * n)
        out[kind] = [pool[(2 * i + offset) * step] for i in range(n)]
    return out


def synthetic_images(out_dir: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` PNG files of coloured shapes on transparent canvases (RGBA, varied sizes)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(24, 160, size=2))
        img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            x0, x1 = sorted(int(v) for v in rng.integers(0, w, size=2))
            y0, y1 = sorted(int(v) for v in rng.integers(0, h, size=2))
            fill = (*(int(c) for c in rng.integers(0, 256, size=3)), int(rng.integers(96, 256)))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x0, y0, x1 + 1, y1 + 1), fill=fill)
        path = out_dir / f"{i:03d}.png"
        img.save(path)
        paths.append(path)
    return paths
