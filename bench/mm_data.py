"""The inputs of ``umr bench image`` and ``umr bench fused``: emoji images and fused queries.

From the emoji test split (``umr data emoji`` writes ``artifacts/data/emoji``):

- ``images``: distinct test images (PNG files, 64x64 RGBA), spread over the styles;
- ``pairs``: the ``(qi,qt)->ci`` queries, an image plus a text saying how to change it
  ("light skin tone"), with their task instruction; ``positives`` is the index of the
  image each query should find among ``candidates``;
- ``candidates``: the images searched by the end-to-end query: the queries' targets and
  an even spread of the other test images.

Without the data set a synthetic stand-in is drawn (shapes on transparent canvases,
captions from a small vocabulary), so the benchmark runs anywhere; the report says which.
Both are written to one JSON file that every worker process reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FUSED_TASK = "(qi,qt)->ci"
SYNTHETIC_INSTRUCTION = "Find this image changed as the text describes."


@dataclass(frozen=True)
class MMData:
    """Everything the workers embed; paths are absolute."""

    source: str  # "emoji" or "synthetic"
    images: list[str]
    pairs: list[tuple[str, str]]  # (text, image path)
    instruction: str | None
    candidates: list[str]
    positives: list[int]  # per pair: the index into candidates it should find (-1: none)

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MMData:
        """Read what :meth:`save` wrote."""
        raw: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        raw["pairs"] = [tuple(p) for p in raw["pairs"]]
        return cls(**raw)


def spread(items: list[Any], n: int) -> list[Any]:
    """``n`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if n <= 0:
        return []
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def emoji_data(root: Path, n_items: int, n_candidates: int) -> MMData:
    """Images and fused queries from the emoji test split under ``root``."""
    records = [
        json.loads(line)
        for line in (root / "test.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    every = sorted(
        {side["image"] for r in records for side in (r["query"], r["positive"]) if "image" in side}
    )
    fused = [r for r in records if r["task"] == FUSED_TASK]
    pairs = spread(fused, n_items)
    wanted = {r["positive"]["image"] for r in pairs}
    # The index holds the queries' targets plus an even spread of the rest, n_candidates
    # in all (or just the targets, when there are more of them).
    rest = [p for p in every if p not in wanted]
    kept = sorted(wanted | set(spread(rest, n_candidates - len(wanted))))
    where = {p: i for i, p in enumerate(kept)}
    return MMData(
        source="emoji",
        images=[str(root / p) for p in spread(every, n_items)],
        pairs=[(r["query"]["text"], str(root / r["query"]["image"])) for r in pairs],
        instruction=fused[0]["query"].get("instruction") if fused else None,
        candidates=[str(root / p) for p in kept],
        positives=[where[r["positive"]["image"]] for r in pairs],
    )


_WORDS = ["red", "blue", "small", "large", "round", "square", "dark", "light", "tilted", "twin"]


def synthetic_data(work: Path, n_items: int, n_candidates: int, size: int = 64) -> MMData:
    """Deterministic shapes on transparent canvases (PNG files under ``work``)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder = work / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(max(n_items, n_candidates)):
        img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        pen = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
            x1, y1 = x0 + int(rng.integers(8, size // 2)), y0 + int(rng.integers(8, size // 2))
            colour = (*(int(c) for c in rng.integers(0, 256, 3)), 255)
            (pen.ellipse if rng.random() < 0.5 else pen.rectangle)((x0, y0, x1, y1), fill=colour)
        path = folder / f"{i:05d}.png"
        img.save(path)
        paths.append(str(path))
    texts = [" ".join(rng.choice(_WORDS, 2)) for _ in range(n_items)]
    pairs = list(zip(texts, paths[:n_items], strict=True))
    return MMData(
        source="synthetic",
        images=paths[:n_items],
        pairs=pairs,
        instruction=SYNTHETIC_INSTRUCTION,
        candidates=paths[:n_candidates],
        positives=[-1] * n_items,
    )


def bench_data(data_dir: Path | None, work: Path, n_items: int, n_candidates: int) -> MMData:
    """Emoji data when ``data_dir`` holds it, else synthetic."""
    if data_dir is not None and (data_dir / "test.jsonl").is_file():
        return emoji_data(data_dir.resolve(), n_items, n_candidates)
    return synthetic_data(work, n_items, n_candidates)
