"""The batch function both engines run: a doc table in, a vector table out, with bounded retries.

:class:`BatchEmbedder` opens one :class:`~umr.runtime.Embedder` (one ONNX Runtime
session per graph) when it is built, so the local engine builds one and the Ray engine
builds one per actor (Ray Data's ``map_batches`` takes the class itself). A batch may mix
texts, images and text+image pairs: each kind goes to its own embedder method, the rows
come back in input order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from umr.runtime.corpus_embed.faults import Fault, FaultInjector
from umr.runtime.corpus_embed.vectors import decode_id, vector_schema

from umr.errors import ImageError, UmrError

log = logging.getLogger(__name__)

#: Extra column on the batch function's output: attempts the batch took (1 = no retry).
ATTEMPTS = "attempts"


class EmbedBatchError(UmrError, RuntimeError):
    """A batch still failed after its retries; names its first and last ids and the cause."""


@dataclass(frozen=True)
class EmbedConfig:
    """Everything a :class:`BatchEmbedder` needs; small and picklable for Ray actors."""

    bundle: str
    variant: str = "fp32"
    threads: int | None = None  # ONNX Runtime threads per session; None = the cores it may use
    batch_size: int = 32  # texts, images or pairs per model call
    retries: int = 2  # further attempts after a batch's first failure
    retry_wait_s: float = 0.5
    faults: tuple[Fault, ...] = ()  # test hook, see umr.runtime.corpus_embed.faults


class BatchEmbedder:
    """Callable turning a doc table (id, id_type, text, metadata, image) into a vector table.

    The output has the columns of :func:`vector_schema` plus :data:`ATTEMPTS`. A batch
    that raises is tried again up to ``config.retries`` times, each retry logged; then
    :class:`EmbedBatchError` is raised. It is never skipped, so rows in = rows out. When
    images failed to decode, the error names every failing row of the batch (id, file,
    reason), not just the batch. ``embedder`` replaces loading ``config.bundle`` (tests).
    """

    def __init__(self, config: EmbedConfig, embedder: Any = None) -> None:
        from umr.runtime import Embedder  # here, so importing the module stays light for Ray

        self.config = config
        if embedder is None:
            embedder = Embedder.load(config.bundle, variant=config.variant, threads=config.threads)
        self.embedder = embedder
        self.schema = vector_schema(self.embedder.dim)
        self._faults = FaultInjector(config.faults)

    def __call__(self, docs: pa.Table) -> pa.Table:
        attempts = 0
        while True:
            attempts += 1
            try:
                vectors = self._embed(docs)
                break
            except Exception as exc:  # any failure: ORT errors, memory, a lost file...
                where = _span(docs)
                if attempts > self.config.retries:
                    raise EmbedBatchError(
                        f"batch of {docs.num_rows} rows ({where}) failed {attempts} times; "
                        f"last error: {type(exc).__name__}: {self._explain(docs, exc)}"
                    ) from exc
                log.warning("batch %s failed (%s: %s); retrying", where, type(exc).__name__, exc)
                time.sleep(self.config.retry_wait_s * attempts)
        return self._table(docs, vectors, attempts)

    def _embed(self, docs: pa.Table) -> np.ndarray:
        if self._faults:
            self._faults.check(docs.column("id").to_pylist())
        texts = docs.column("text").to_pylist()
        images = docs.column("image").to_pylist()
        dim, size = self.embedder.dim, self.config.batch_size
        vectors = np.empty((docs.num_rows, dim), dtype=np.float32)
        for rows, embed in _by_kind(self.embedder, texts, images, size):
            got = embed()
            if got.shape != (len(rows), dim):  # a wrong shape must not be written
                raise RuntimeError(f"embedder returned {got.shape} for {len(rows)} inputs")
            vectors[rows] = got
        return vectors

    def _explain(self, docs: pa.Table, exc: Exception) -> str:
        """``exc``'s message; for an image error, every row of the batch whose image fails."""
        if not isinstance(exc, ImageError):
            return str(exc)
        failing = failing_images(docs, getattr(self.embedder, "max_image_pixels", None))
        if not failing:
            return str(exc)
        shown = "; ".join(failing[:MAX_REPORTED])
        more = f"; and {len(failing) - MAX_REPORTED} more" if len(failing) > MAX_REPORTED else ""
        return f"{len(failing)} image(s) cannot be embedded: {shown}{more}"

    def _table(self, docs: pa.Table, vectors: np.ndarray, attempts: int) -> pa.Table:
        flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1), pa.float32())
        columns = {
            "id": docs.column("id"),
            "id_type": docs.column("id_type"),
            "vector": pa.FixedSizeListArray.from_arrays(flat, self.embedder.dim),
            "metadata": docs.column("metadata"),
            ATTEMPTS: pa.array(np.full(docs.num_rows, attempts, np.int32)),
        }
        schema = self.schema.append(pa.field(ATTEMPTS, pa.int32(), nullable=False))
        return pa.table(columns, schema=schema)


#: Failing rows named in one error message; the rest are counted.
MAX_REPORTED = 20


def _by_kind(
    embedder: Any, texts: list[str], images: list[str | None], batch_size: int
) -> list[tuple[list[int], Callable[[], np.ndarray]]]:
    """``(rows, embed)`` per kind present: texts, images alone (text ""), text+image pairs."""
    groups: dict[str, list[int]] = {"text": [], "image": [], "text+image": []}
    for i, (text, image) in enumerate(zip(texts, images, strict=True)):
        kind = "text" if image is None else ("text+image" if text else "image")
        groups[kind].append(i)
    t, im, tf = groups["text"], groups["image"], groups["text+image"]
    calls = [
        (t, lambda: embedder.embed_text([texts[i] for i in t], batch_size=batch_size)),
        (im, lambda: embedder.embed_image([images[i] for i in im], batch_size=batch_size)),
        (
            tf,
            lambda: embedder.embed_fused(
                [texts[i] for i in tf], [images[i] for i in tf], batch_size=batch_size
            ),
        ),
    ]
    return [(rows, embed) for rows, embed in calls if rows]


def failing_images(docs: pa.Table, max_pixels: int | None = None) -> list[str]:
    """``id 'x' (path): reason`` for every row of ``docs`` whose image does not open."""
    from umr.images import DEFAULT_MAX_PIXELS, open_image

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    ids, kinds = docs.column("id").to_pylist(), docs.column("id_type").to_pylist()
    out = []
    for item_id, kind, path in zip(ids, kinds, docs.column("image").to_pylist(), strict=True):
        if path is None:
            continue
        try:
            open_image(path, max_pixels=limit, name="image")
        except ImageError as exc:
            reason = str(exc).removeprefix(f"image ({path}): ").removeprefix("image: ")
            out.append(f"id {decode_id(item_id, kind)!r} ({path}): {reason}")
    return out


def _span(docs: pa.Table) -> str:
    """``ids 7..'doc-9'``: the first and last id of a batch, as the user wrote them."""
    if not docs.num_rows:
        return "no rows"
    ids, kinds = docs.column("id"), docs.column("id_type")
    first, last = (decode_id(ids[i].as_py(), kinds[i].as_py()) for i in (0, docs.num_rows - 1))
    return f"ids {first!r}..{last!r}"
