"""The batch function both engines run: a doc table in, a vector table out, with bounded retries.

:class:`BatchEmbedder` opens one :class:`~umr.runtime.Embedder` (one ONNX Runtime
session) when it is built, so the local engine builds one and the Ray engine builds one
per actor (Ray Data's ``map_batches`` takes the class itself).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from umr.runtime.corpus_embed.faults import Fault, FaultInjector
from umr.runtime.corpus_embed.vectors import decode_id, vector_schema

from umr.errors import UmrError

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
    batch_size: int = 32  # texts per model call
    retries: int = 2  # further attempts after a batch's first failure
    retry_wait_s: float = 0.5
    faults: tuple[Fault, ...] = ()  # test hook, see umr.runtime.corpus_embed.faults


class BatchEmbedder:
    """Callable turning a doc table (id, id_type, text, metadata) into a vector table.

    The output has the columns of :func:`vector_schema` plus :data:`ATTEMPTS`. A batch
    that raises is tried again up to ``config.retries`` times, each retry logged; then
    :class:`EmbedBatchError` is raised. It is never skipped, so rows in = rows out.
    """

    def __init__(self, config: EmbedConfig) -> None:
        from umr.runtime import Embedder  # here, so importing the module stays light for Ray

        self.config = config
        self.embedder = Embedder.load(config.bundle, variant=config.variant, threads=config.threads)
        self.schema = vector_schema(self.embedder.dim)
        self._faults = FaultInjector(config.faults)

    def __call__(self, docs: pa.Table) -> pa.Table:
        texts = docs.column("text").to_pylist()
        attempts = 0
        while True:
            attempts += 1
            try:
                vectors = self._embed(docs, texts)
                break
            except Exception as exc:  # any failure: ORT errors, memory, a lost file...
                where = _span(docs)
                if attempts > self.config.retries:
                    raise EmbedBatchError(
                        f"batch of {docs.num_rows} rows ({where}) failed {attempts} times; "
                        f"last error: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("batch %s failed (%s: %s); retrying", where, type(exc).__name__, exc)
                time.sleep(self.config.retry_wait_s * attempts)
        return self._table(docs, vectors, attempts)

    def _embed(self, docs: pa.Table, texts: list[str]) -> np.ndarray:
        if self._faults:
            self._faults.check(docs.column("id").to_pylist())
        vectors = self.embedder.embed_text(texts, batch_size=self.config.batch_size)
        if vectors.shape != (len(texts), self.embedder.dim):  # a wrong shape must not be written
            raise RuntimeError(f"embedder returned {vectors.shape} for {len(texts)} texts")
        return vectors

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


def _span(docs: pa.Table) -> str:
    """``ids 7..'doc-9'``: the first and last id of a batch, as the user wrote them."""
    if not docs.num_rows:
        return "no rows"
    ids, kinds = docs.column("id"), docs.column("id_type")
    first, last = (decode_id(ids[i].as_py(), kinds[i].as_py()) for i in (0, docs.num_rows - 1))
    return f"ids {first!r}..{last!r}"
