"""Exact (brute-force) search in NumPy: the reference the approximate index is measured by."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from umr.errors import IndexCorruptError

from . import store
from .base import BaseIndex

_SCORE_BLOCK = 1 << 24  # floats per query-block score matrix (64 MiB)


class ExactIndex(BaseIndex):
    """Brute-force index with :class:`Index`'s API, scores and file format family.

    ``M``, ``ef_construction`` and ``ef`` are accepted and stored (so the two kinds
    describe themselves alike) but do not affect results.
    """

    KIND = "exact"
    uses_ef = False

    def _store_init(self, capacity: int) -> None:
        self._vecs = np.zeros((capacity, self._dim), dtype=np.float32)
        self._alive = np.zeros(capacity, dtype=bool)
        self._sqnorm = np.zeros(capacity, dtype=np.float32)
        self._n = 0

    def _store_capacity(self) -> int:
        return len(self._vecs)

    def _store_add(self, x: np.ndarray, labels: np.ndarray) -> None:
        if self._space == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        need = self._n + len(x)
        if need > len(self._vecs):
            self._grow(max(need, 2 * len(self._vecs)))
        self._vecs[self._n : need] = x
        self._sqnorm[self._n : need] = np.einsum("ij,ij->i", x, x)
        self._alive[self._n : need] = True
        self._n = need

    def _grow(self, capacity: int) -> None:
        for name in ("_vecs", "_alive", "_sqnorm"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _store_delete(self, labels: np.ndarray) -> None:
        self._alive[labels] = False

    def _store_search(
        self, q: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._space == "cosine":
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        rows = max(1, _SCORE_BLOCK // max(self._n, 1))
        parts = [self._top_k(q[i : i + rows], k) for i in range(0, len(q), rows)]
        labels = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        return labels, scores, None

    def _top_k(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = q @ self._vecs[: self._n].T
        if self._space == "l2":
            qq = np.einsum("ij,ij->i", q, q)
            scores = 2.0 * scores - qq[:, None] - self._sqnorm[None, : self._n]
        scores[:, ~self._alive[: self._n]] = -np.inf
        return best_k(scores, k)

    def _store_search_subset(
        self, q: np.ndarray, k: int, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        cols, scores = brute_force(q, self._vecs[labels], k, self._space)
        return labels[cols], scores, None

    def _store_save(self, directory: Path, gen: int) -> dict[str, store.FileEntry]:
        def write(path: Path) -> None:
            with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a path
                np.save(fh, self._vecs[: self._n], allow_pickle=False)

        return {"vectors": store.write_data_file(directory, f"vectors-{gen}.npy", write)}

    def _store_load(self, directory: Path, manifest: store.IndexManifest) -> None:
        path = store.verified_path(directory, manifest, "vectors")
        try:
            vecs = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise IndexCorruptError(f"{path}: not a readable .npy array ({exc})") from None
        want = (manifest.labels, manifest.dim)
        if vecs.dtype != np.float32 or vecs.shape != want:
            raise IndexCorruptError(
                f"{path}: holds {vecs.dtype} {vecs.shape}, expected float32 {want}"
            )
        if not np.isfinite(vecs).all():
            raise IndexCorruptError(f"{path}: a stored vector holds NaN or inf")
        self._store_init(max(manifest.capacity, manifest.labels, 1))
        self._store_add_raw(vecs)
        self._alive[list(self._items.deleted)] = False

    def _store_add_raw(self, vecs: np.ndarray) -> None:
        self._vecs[: len(vecs)] = vecs
        self._sqnorm[: len(vecs)] = np.einsum("ij,ij->i", vecs, vecs)
        self._alive[: len(vecs)] = True
        self._n = len(vecs)


def best_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of the ``k`` highest scores per row, best first."""
    n = scores.shape[1]
    if k < n:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(n), (len(scores), n))
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def brute_force(
    q: np.ndarray, vecs: np.ndarray, k: int, space: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of queries ``q`` over rows ``vecs`` (unit rows in cosine space).

    Returns row positions into ``vecs`` and higher-is-better scores, as :class:`Index`
    reports them; queries are scored in blocks so no score matrix passes 64 MiB.
    """
    if space == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sqnorm = np.einsum("ij,ij->i", vecs, vecs) if space == "l2" else None
    rows = max(1, _SCORE_BLOCK // max(len(vecs), 1))
    parts = []
    for i in range(0, len(q), rows):
        block = q[i : i + rows]
        scores = block @ vecs.T
        if sqnorm is not None:
            qq = np.einsum("ij,ij->i", block, block)
            scores = 2.0 * scores - qq[:, None] - sqnorm[None, :]
        parts.append(best_k(scores, k))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
