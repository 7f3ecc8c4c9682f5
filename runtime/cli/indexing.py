"""Fill an index from texts (embedding them) or from precomputed vectors, with progress."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from umr.runtime.input_files import Item

#: Texts embedded per progress step: large enough that length-sorting and the worker pool
#: inside one embed call stay effective, small enough for a live progress bar.
CHUNK = 1024


def item_metadata(item: Item) -> dict[str, Any]:
    """What the index stores with an item: its text, and the user's metadata if any."""
    return {"text": item.text, "metadata": item.metadata} if item.metadata else {"text": item.text}


def embed_into(
    index: Any,
    embedder: Any,
    items: Sequence[Item],
    *,
    batch_size: int = 32,
    progress: bool = True,
    unit: str = "doc",
) -> None:
    """Embed ``items`` with ``embedder`` and add them to ``index`` under their ids."""
    from tqdm import tqdm

    with tqdm(total=len(items), unit=unit, desc="embedding", disable=not progress) as bar:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            vectors = embedder.embed_text([it.text for it in chunk], batch_size=batch_size)
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
