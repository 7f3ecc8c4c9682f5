"""Fill an index from items (texts, images, text+image pairs; embedding them) or from
precomputed vectors, with progress."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from umr.runtime.input_files import Item

from umr.errors import ImageError, InputValueError

#: Items embedded per progress step: large enough that length-sorting and the worker pool
#: inside one embed call stay effective, small enough for a live progress bar.
CHUNK = 1024
_IMAGE_INDEX = re.compile(r"^image (\d+)(?: \(.*?\))?: ")  # "image 3 (/a.png): why"


def item_metadata(item: Item) -> dict[str, Any]:
    """What the index stores with an item: its text and/or image path, and the user's
    metadata if any (an image-only item stores no text)."""
    out: dict[str, Any] = {} if item.image is not None and not item.text else {"text": item.text}
    if item.image is not None:
        out["image"] = str(item.image)
    if item.metadata:
        out["metadata"] = item.metadata
    return out


def check_modalities(items: Sequence[Item], embedder: Any, source: str) -> None:
    """Refuse items the bundle cannot embed, naming the first one's line."""
    can = set(getattr(embedder, "modalities", ("text",)))
    for item in items:
        if item.kind not in can:
            raise InputValueError(
                f"{source}:{item.line}: a {item.kind} item, but bundle "
                f"{embedder.manifest.name!r} embeds {', '.join(sorted(can))} only"
            )


def check_images(items: Sequence[Item], source: str, *, max_pixels: int, threads: int = 1) -> None:
    """Open every item's image before anything is embedded: unreadable, unsupported,
    oversized and (for PNG) truncated files raise ``ImageError`` naming the line.

    Only headers are read (plus PNG checksums); pixels are decoded once, when embedded.
    """
    from PIL import Image

    def check(item: Item) -> None:
        where = f"{source}:{item.line}: image {item.image}"
        try:
            with Image.open(item.image) as img:
                if img.width * img.height > max_pixels:
                    raise ImageError(
                        f"{where}: {img.width}x{img.height} pixels exceeds the limit of "
                        f"{max_pixels}"
                    )
                img.verify()
        except ImageError:
            raise
        except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, bombs...)
            raise ImageError(f"{where}: not a readable image ({exc})") from None

    todo = [it for it in items if it.image is not None]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in pool.map(check, todo):
            pass


def embed_items(embedder: Any, items: Sequence[Item], source: str, batch_size: int) -> np.ndarray:
    """Vectors of ``items`` in order: texts by the text graph, images and pairs by the
    fused graph. An image that fails to decode raises ``ImageError`` naming its line."""
    out = np.empty((len(items), embedder.dim), dtype=np.float32)
    for kind in ("text", "image", "text+image"):
        rows = [i for i, it in enumerate(items) if it.kind == kind]
        if not rows:
            continue
        part = [items[i] for i in rows]
        try:
            if kind == "text":
                vecs = embedder.embed_text([it.text for it in part], batch_size=batch_size)
            elif kind == "image":
                vecs = embedder.embed_image([it.image for it in part], batch_size=batch_size)
            else:
                texts, images = [it.text for it in part], [it.image for it in part]
                vecs = embedder.embed_fused(texts, images, batch_size=batch_size)
        except ImageError as exc:
            raise _at_line(exc, part, source) from None
        out[rows] = vecs
    return out


def _at_line(exc: ImageError, part: Sequence[Item], source: str) -> ImageError:
    """The embedder names ``image i`` of its call; say which line of the input that is."""
    match = _IMAGE_INDEX.match(str(exc))
    if match is None or int(match.group(1)) >= len(part):
        return exc
    item = part[int(match.group(1))]
    return ImageError(f"{source}:{item.line}: image {item.image}: {str(exc)[match.end() :]}")


def embed_into(
    index: Any,
    embedder: Any,
    items: Sequence[Item],
    *,
    batch_size: int = 32,
    progress: bool = True,
    unit: str = "doc",
    source: str = "input",
) -> None:
    """Embed ``items`` with ``embedder`` and add them to ``index`` under their ids."""
    from tqdm import tqdm

    with tqdm(total=len(items), unit=unit, desc="embedding", disable=not progress) as bar:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            vectors = embed_items(embedder, chunk, source, batch_size)
            index.add(vectors, [it.id for it in chunk], [item_metadata(it) for it in chunk])
            bar.update(len(chunk))


def vector_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the index stores with a precomputed vector: its metadata, laid out as
    :func:`item_metadata` does (``{"metadata": {...}}``), so ``--filter metadata.KEY=...``
    means the same on indexes built from text and from vectors."""
    return {"metadata": metadata} if metadata else None


def load_vectors_into(
    index: Any, batches: Iterable[Any], *, total: int, progress: bool = True
) -> None:
    """Add every :class:`~umr.runtime.corpus_embed.vectors.VectorBatch` to ``index``."""
    from tqdm import tqdm

    with tqdm(total=total, unit="vec", desc="loading", disable=not progress) as bar:
        for batch in batches:
            index.add(batch.vectors, batch.ids, [vector_metadata(m) for m in batch.metadata])
            bar.update(len(batch.ids))
