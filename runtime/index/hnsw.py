"""Approximate search on hnswlib 0.8, wrapped for ids, metadata, locking and safe files."""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np

from umr.errors import IndexCorruptError

from . import store
from .base import BaseIndex
from .exact import brute_force
from .hnsw_header import Expected, check_index_file

# Filtered searches matching at most this many items score them directly (see
# _store_search_subset): 10k x 384 is ~4M multiply-adds per query, about a millisecond.
BRUTE_FORCE_MAX = 10_000


class Index(BaseIndex):
    """Approximate nearest-neighbour index (HNSW via hnswlib).

    Scores are higher-is-better: cosine similarity, inner product, or negative
    squared L2 distance. See :class:`BaseIndex` for the verbs.
    """

    KIND = "hnsw"

    def _store_init(self, capacity: int) -> None:
        self._hnsw = hnswlib.Index(space=self._space, dim=self._dim)
        self._hnsw.init_index(
            max_elements=capacity, M=self._M, ef_construction=self._ef_construction
        )
        self._hnsw.set_ef(self._ef)
        self._set_threads()

    def _set_threads(self) -> None:
        if self._threads > 0:  # else hnswlib's default: every core
            self._hnsw.set_num_threads(self._threads)

    def _store_capacity(self) -> int:
        return int(self._hnsw.get_max_elements())

    def _store_set_ef(self, ef: int) -> None:
        self._hnsw.set_ef(ef)

    def _store_add(self, x: np.ndarray, labels: np.ndarray) -> None:
        need = self._hnsw.get_current_count() + len(x)
        capacity = self._store_capacity()
        if need > capacity:
            self._hnsw.resize_index(max(need, 2 * capacity))
        self._hnsw.add_items(x, labels)

    def _store_delete(self, labels: np.ndarray) -> None:
        for label in labels.tolist():
            self._hnsw.mark_deleted(label)

    def _store_search(
        self, q: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        try:
            labels, dist = self._hnsw.knn_query(q, k=k)
            counts: np.ndarray | None = None
        except RuntimeError:
            # hnswlib raises "contiguous 2D array" when deletions leave fewer than k live
            # items reachable for some row; redo row by row, shrinking k where needed. A
            # larger ef would not help: with deletions present hnswlib 0.8 already searches
            # on until it holds ef live candidates or the reachable graph runs out.
            labels, dist, counts = self._search_rows(q, k)
        return labels, self._scores(dist), counts

    def _store_search_subset(
        self, q: np.ndarray, k: int, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        # A selective filter makes hnswlib walk most of the graph (it searches on until
        # ef allowed items are found), calling back into Python per candidate: scoring
        # the few allowed vectors directly is both faster and exact.
        if len(labels) <= max(BRUTE_FORCE_MAX, self._items.n_labels // 50):
            return self._brute_force(q, k, labels)
        allowed = np.zeros(self._items.n_labels, dtype=bool)
        allowed[labels] = True
        try:
            found, dist = self._hnsw.knn_query(q, k=k, filter=allowed.__getitem__)
        except RuntimeError:  # fewer than k allowed items reachable for some row
            return self._brute_force(q, k, labels)
        return found, self._scores(dist), None

    def _brute_force(
        self, q: np.ndarray, k: int, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        # hnswlib stores cosine vectors normalized, as brute_force expects
        vecs = np.asarray(self._hnsw.get_items(labels), dtype=np.float32)
        cols, scores = brute_force(q, vecs, k, self._space)
        return labels[cols], scores, None

    def _search_rows(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = np.zeros((len(q), k), dtype=np.uint64)
        dist = np.zeros((len(q), k), dtype=np.float32)
        counts = np.zeros(len(q), dtype=np.int64)
        for row in range(len(q)):
            lo, hi = 0, k  # invariant: lo hits are known to be answerable
            while lo < hi:
                mid = (lo + hi + 1) // 2
                try:
                    found = self._hnsw.knn_query(q[row : row + 1], k=mid, num_threads=1)
                except RuntimeError:
                    hi = mid - 1
                    continue
                lo = mid
                labels[row, :mid], dist[row, :mid] = found[0][0], found[1][0]
            counts[row] = lo
        return labels, dist, counts

    def _scores(self, dist: np.ndarray) -> np.ndarray:
        # hnswlib: ip/cosine distance = 1 - dot, l2 distance = squared L2.
        return -dist if self._space == "l2" else 1.0 - dist

    def _store_save(self, directory: Path, gen: int) -> dict[str, store.FileEntry]:
        entry = store.write_data_file(
            directory, f"hnsw-{gen}.bin", lambda p: self._hnsw.save_index(str(p))
        )
        return {"index": entry}

    def _store_load(self, directory: Path, manifest: store.IndexManifest) -> None:
        path = store.verified_path(directory, manifest, "index")
        want = Expected(
            dim=manifest.dim,
            M=manifest.M,
            ef_construction=manifest.ef_construction,
            labels=manifest.labels,
            capacity=manifest.capacity,
            deleted=frozenset(self._items.deleted),
        )
        check_index_file(path, want)
        self._hnsw = hnswlib.Index(space=self._space, dim=self._dim)
        try:
            self._hnsw.load_index(str(path), max_elements=manifest.capacity)
        except RuntimeError as exc:  # the checks above should make this unreachable
            raise IndexCorruptError(f"{path}: hnswlib refused the file ({exc})") from exc
        self._hnsw.set_ef(self._ef)
        self._set_threads()
