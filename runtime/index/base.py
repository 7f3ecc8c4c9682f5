"""What both index kinds share: ids, metadata, validation, locking and the save protocol.

Subclasses supply the vector store through five hooks (``_store_add``, ``_store_search``,
``_store_delete``, ``_store_save``, ``_store_load``). Locking: searches hold the read
lock; mutations hold the write lock. ``_mutate`` (a plain mutex) serializes whole
mutations, so a large add can drop the write lock between chunks (letting searches in)
without another writer slipping in between.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from umr.errors import IndexCorruptError

from . import store
from .filters import FilterValue, check_filter
from .items import ItemTable
from .rwlock import RWLock
from .settings import HnswSettings
from .types import Hit, IndexInfo, make_hits
from .validate import (
    Id,
    as_matrix,
    check_k,
    check_metadata,
    check_positive_int,
    check_space,
    normalize_id,
    normalize_ids,
)

# recall@10 0.987 on 100k clustered 384-d vectors (M=16, ef_construction=200), where ef 48
# gives 0.978; see bench/index_tuning.py for the data, the sweep and the QPS it costs.
DEFAULT_EF = 64
_T = TypeVar("_T", bound="BaseIndex")


class BaseIndex(HnswSettings):
    """Shared machinery; use :class:`Index` or :class:`ExactIndex`."""

    KIND: ClassVar[str] = ""
    add_chunk: ClassVar[int] = 2048  # rows added per write-lock hold
    uses_ef: ClassVar[bool] = True  # False: a per-call ef changes nothing, skip its lock

    def __init__(
        self, dim: int, space: str, M: int, ef_construction: int, ef: int, num_threads: int
    ) -> None:
        self._dim = check_positive_int("dim", dim)
        self._space = check_space(space)
        self._M = check_positive_int("M", M, 2)
        self._ef_construction = check_positive_int("ef_construction", ef_construction)
        self._ef = check_positive_int("ef", ef)
        self._threads = num_threads
        self._items = ItemTable()
        self._lock = RWLock()
        self._mutate = threading.Lock()

    @classmethod
    def create(
        cls: type[_T],
        dim: int,
        space: str = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef: int = DEFAULT_EF,
        capacity: int = 1024,
        *,
        num_threads: int = -1,
    ) -> _T:
        """A new empty index; it grows past ``capacity`` by doubling.

        ``ef`` is the default search breadth (see :mod:`umr.bench.index_tuning`);
        ``num_threads`` bounds the threads one add/search call uses (-1: all cores).
        """
        index = cls(dim, space, M, ef_construction, ef, num_threads)
        index._store_init(check_positive_int("capacity", capacity))
        return index

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str], *, num_threads: int = -1) -> _T:
        """Load a saved index after verifying its manifest, checksums and layout."""
        directory = Path(path)
        manifest = store.read_manifest(directory)
        if manifest.kind != cls.KIND:
            raise IndexCorruptError(
                f"{directory}: holds a {manifest.kind!r} index, not {cls.KIND!r} "
                "(umr.runtime.index.load picks the right class)"
            )
        items = _load_items(directory, manifest)
        m = manifest
        index = cls(m.dim, m.space, m.M, m.ef_construction, m.ef, num_threads)
        index._items = items
        index._store_load(directory, manifest)
        return index

    # -- settings (dim, space, M, ef_construction: HnswSettings) ----------------------
    @property
    def ef(self) -> int:
        """Default candidate list size of a search; settable (takes the write lock)."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        value = check_positive_int("ef", value)
        with self._mutate, self._lock.write():
            self._store_set_ef(value)
            self._ef = value

    @property
    def properties(self) -> IndexInfo:
        """A snapshot of settings and sizes."""
        with self._lock.read():
            return IndexInfo(
                kind=self.KIND,
                dim=self._dim,
                space=self._space,
                M=self._M,
                ef_construction=self._ef_construction,
                ef=self._ef,
                count=len(self._items),
                deleted=len(self._items.deleted),
                capacity=self._store_capacity(),
            )

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    # -- verbs ------------------------------------------------------------------------
    def add(self, vectors: Any, ids: Any, metadata: Any = None) -> None:
        """Add ``vectors`` [n, dim] under ``ids`` (int or str, unique) with optional metadata.

        Everything is checked before anything is added: a bad call changes nothing.
        """
        x = as_matrix(vectors, self._dim, self._space)
        id_list = normalize_ids(ids, len(x))
        meta = check_metadata(metadata, len(x))
        with self._mutate:
            self._items.check_new(id_list)
            for start in range(0, len(x), self.add_chunk):
                chunk = slice(start, start + self.add_chunk)
                with self._lock.write():
                    first = self._items.n_labels
                    labels = np.arange(first, first + len(x[chunk]))
                    self._store_add(x[chunk], labels)
                    self._items.append(id_list[chunk], meta[chunk])

    def search(
        self,
        queries: Any,
        k: int = 10,
        ef: int | None = None,
        filter: Mapping[str, FilterValue] | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best hits per query row, best first (at most ``len(self)`` each).

        ``filter`` keeps only items whose metadata equals every given value (see
        :mod:`umr.runtime.index.filters`); rows may then hold fewer than ``k`` hits.
        A per-call ``ef`` other than the default briefly takes the write lock, since
        hnswlib keeps ef as index-wide state.
        """
        k = check_k(k)
        q = as_matrix(queries, self._dim, self._space, "queries")
        flt = check_filter(filter)
        if ef is not None and check_positive_int("ef", ef) != self._ef and self.uses_ef:
            with self._mutate, self._lock.write():
                self._store_set_ef(ef)
                try:
                    return self._search_locked(q, k, flt)
                finally:
                    self._store_set_ef(self._ef)
        return self._search_shared(q, k, flt)

    def delete(self, ids: Any) -> None:
        """Remove ``ids``; an unknown id raises UnknownIdError and changes nothing."""
        id_list = normalize_ids(ids)
        with self._mutate, self._lock.write():
            labels = self._items.labels_of(id_list)
            self._store_delete(labels)
            self._items.remove(id_list, labels)

    def get(self, item_id: Id) -> dict[str, Any] | None:
        """The metadata stored with ``item_id`` (UnknownIdError if it is not live)."""
        item_id = normalize_id(item_id, 0)
        with self._lock.read():
            return self._items.get(item_id)

    def ids(self) -> list[Id]:
        """Every live id, oldest first."""
        with self._lock.read():
            return self._items.live_ids()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to directory ``path`` crash-safely (old or new state survives a SIGKILL).

        Holds the mutation mutex and the read lock: searches go on during a save.
        """
        directory = Path(path)
        with self._mutate, self._lock.read(), store.save_lock(directory):
            gen = store.next_generation(directory)
            files = self._store_save(directory, gen)
            payload = json.dumps(self._items.to_json(), ensure_ascii=False).encode("utf-8")
            files["items"] = store.write_data_file(
                directory, f"items-{gen}.json", lambda p: p.write_bytes(payload)
            )
            store.commit(directory, self._manifest(gen, files))

    # -- internals --------------------------------------------------------------------
    def _manifest(self, gen: int, files: dict[str, store.FileEntry]) -> store.IndexManifest:
        return store.IndexManifest(
            kind=self.KIND,
            dim=self._dim,
            space=self._space,
            M=self._M,
            ef_construction=self._ef_construction,
            ef=self._ef,
            count=len(self._items),
            labels=self._items.n_labels,
            capacity=self._store_capacity(),
            generation=gen,
            files=files,
        )

    def _search_locked(
        self, q: np.ndarray, k: int, flt: dict[str, FilterValue] | None = None
    ) -> list[list[Hit]]:
        if flt is None:
            live = len(self._items)
            if live == 0:
                return [[] for _ in range(len(q))]
            labels, scores, counts = self._store_search(q, min(k, live))
        else:
            allowed = self._items.matching(flt)
            if not len(allowed):
                return [[] for _ in range(len(q))]
            labels, scores, counts = self._store_search_subset(q, min(k, len(allowed)), allowed)
        return _to_hits(self._items.ids_of(labels), scores, self._items.meta_of(labels), counts)

    def _search_shared(
        self, q: np.ndarray, k: int, flt: dict[str, FilterValue] | None
    ) -> list[list[Hit]]:
        self._lock.acquire_read()  # not a ``with``: this is the per-query hot path
        try:
            return self._search_locked(q, k, flt)
        finally:
            self._lock.release_read()

    # -- hooks for subclasses ---------------------------------------------------------
    def _store_init(self, capacity: int) -> None:
        raise NotImplementedError

    def _store_capacity(self) -> int:
        raise NotImplementedError

    def _store_set_ef(self, ef: int) -> None:
        """Make ``ef`` the breadth of the next searches (no-op for exact search)."""

    def _store_add(self, x: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def _store_search(
        self, q: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Labels [n, k], scores [n, k], and None or the valid count per row (rest: padding)."""
        raise NotImplementedError

    def _store_search_subset(
        self, q: np.ndarray, k: int, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like ``_store_search`` over live ``labels`` only (sorted, ``k <= len(labels)``)."""
        raise NotImplementedError

    def _store_delete(self, labels: np.ndarray) -> None:
        raise NotImplementedError

    def _store_save(self, directory: Path, gen: int) -> dict[str, store.FileEntry]:
        raise NotImplementedError

    def _store_load(self, directory: Path, manifest: store.IndexManifest) -> None:
        raise NotImplementedError


def _to_hits(
    ids: np.ndarray, scores: np.ndarray, meta: np.ndarray | None, counts: np.ndarray | None
) -> list[list[Hit]]:
    n, k = ids.shape
    flat = make_hits(
        ids.ravel().tolist(),
        scores.ravel().tolist(),
        None if meta is None else meta.ravel().tolist(),
    )
    if counts is None:
        return [flat[i : i + k] for i in range(0, n * k, k)]
    # rows the fallback search could only partly answer
    return [flat[r * k : r * k + c] for r, c in enumerate(counts.tolist())]


def _load_items(directory: Path, manifest: store.IndexManifest) -> ItemTable:
    path = store.verified_path(directory, manifest, "items")
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{path}: not valid JSON ({exc})") from None
    items = ItemTable.from_json(obj, str(path))
    if (len(items), items.n_labels) != (manifest.count, manifest.labels):
        raise IndexCorruptError(
            f"{path}: holds {len(items)} live of {items.n_labels} labels, manifest says "
            f"{manifest.count} of {manifest.labels}"
        )
    return items
