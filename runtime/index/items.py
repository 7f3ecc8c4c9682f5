"""The label table: hnswlib labels (dense ints 0..n-1) to the user's ids and metadata.

Labels are never reused: a deleted id that is added again gets a fresh label, and the
old one stays a tombstone. Label -> id is an array so a whole result matrix maps in one
fancy-index, with no per-hit Python work. While every id is an int (the common case) the
ids also live in an int64 array: mapping through it touches no scattered Python objects,
which matters on the per-query hot path of a large index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from umr.errors import DuplicateIdError, IndexCorruptError, UnknownIdError

from .filters import FilterValue, MetadataIndex
from .validate import Id


class ItemTable:
    """Ids, metadata and tombstones of every label an index has handed out."""

    def __init__(self) -> None:
        self._ids = np.empty(0, dtype=object)
        self._meta = np.empty(0, dtype=object)
        self._int_ids: np.ndarray | None = np.empty(0, dtype=np.int64)  # None once a str id
        self._alive = np.empty(0, dtype=bool)  # label -> live, for filtered searches
        self._by_meta = MetadataIndex()
        self._any_meta = False
        self._n = 0
        self._live: dict[Id, int] = {}
        self.deleted: set[int] = set()

    @property
    def n_labels(self) -> int:
        """Labels handed out so far, deleted ones included."""
        return self._n

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._live

    def check_new(self, ids: Sequence[Id]) -> None:
        """Raise DuplicateIdError if an id repeats within ``ids`` or is already live."""
        seen: set[Id] = set()
        for i, item_id in enumerate(ids):
            if item_id in self._live:
                raise DuplicateIdError(f"ids[{i}]: id {item_id!r} is already in the index")
            if item_id in seen:
                raise DuplicateIdError(f"ids[{i}]: id {item_id!r} appears twice in this call")
            seen.add(item_id)

    def labels_of(self, ids: Sequence[Id]) -> np.ndarray:
        """The live labels of ``ids``; names the first unknown or repeated id."""
        out = np.empty(len(ids), dtype=np.int64)
        seen: set[Id] = set()
        for i, item_id in enumerate(ids):
            label = self._live.get(item_id)
            if label is None:
                raise UnknownIdError(f"ids[{i}]: id {item_id!r} is not in the index")
            if item_id in seen:
                raise DuplicateIdError(f"ids[{i}]: id {item_id!r} appears twice in this call")
            seen.add(item_id)
            out[i] = label
        return out

    def append(self, ids: Sequence[Id], metadata: Sequence[dict[str, Any] | None]) -> np.ndarray:
        """Hand out fresh labels to ``ids`` (already checked) and return them."""
        start, n = self._n, len(ids)
        self._reserve(start + n)
        labels = np.arange(start, start + n, dtype=np.int64)
        self._fill(start, ids, metadata)
        self._live.update(zip(ids, labels.tolist(), strict=True))
        self._n = start + n
        self._by_meta.extend(start, metadata)
        return labels

    def remove(self, ids: Sequence[Id], labels: np.ndarray) -> None:
        """Tombstone ``labels`` (the live labels of ``ids``)."""
        for item_id in ids:
            del self._live[item_id]
        self.deleted.update(labels.tolist())
        self._alive[labels] = False

    def get(self, item_id: Id) -> dict[str, Any] | None:
        """Metadata of a live id."""
        label = self._live.get(item_id)
        if label is None:
            raise UnknownIdError(f"id {item_id!r} is not in the index")
        return self._meta[label]

    def ids_of(self, labels: np.ndarray) -> np.ndarray:
        """Ids of ``labels`` (any shape): an int64 or object array of the same shape."""
        return self._ids[labels] if self._int_ids is None else self._int_ids[labels]

    def meta_of(self, labels: np.ndarray) -> np.ndarray | None:
        """Metadata of ``labels`` (same shape, object array); None if nothing has any."""
        return self._meta[labels] if self._any_meta else None

    def matching(self, flt: Mapping[str, FilterValue]) -> np.ndarray:
        """Live labels (sorted) whose metadata satisfies a checked filter."""
        labels = self._by_meta.labels(flt, self._meta[: self._n])
        return labels[self._alive[labels]]

    def live_ids(self) -> list[Id]:
        """Every live id, in label order."""
        return [self._ids[label] for label in sorted(self._live.values())]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description; ``from_json`` inverts it."""
        n = self._n
        return {
            "ids": self._ids[:n].tolist(),
            "metadata": self._meta[:n].tolist(),
            "deleted": sorted(self.deleted),
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ItemTable:
        """Rebuild a table, checking every field; IndexCorruptError names ``where``."""
        if not isinstance(obj, dict):
            raise IndexCorruptError(f"{where}: expected a JSON object")
        ids, meta, deleted = (obj.get(key) for key in ("ids", "metadata", "deleted"))
        if not (isinstance(ids, list) and isinstance(meta, list) and isinstance(deleted, list)):
            raise IndexCorruptError(f"{where}: expected lists 'ids', 'metadata', 'deleted'")
        if len(meta) != len(ids):
            raise IndexCorruptError(f"{where}: {len(ids)} ids but {len(meta)} metadata entries")
        table = cls()
        _check_entries(ids, meta, deleted, where)
        table._reserve(len(ids))
        table._fill(0, ids, meta)
        table._n = len(ids)
        table.deleted = set(deleted)
        table._alive[list(table.deleted)] = False
        for label, item_id in enumerate(ids):
            if label in table.deleted:
                continue
            if item_id in table._live:
                raise IndexCorruptError(f"{where}: live id {item_id!r} appears twice")
            table._live[item_id] = label
        return table

    def _fill(self, start: int, ids: Sequence[Id], meta: Sequence[dict[str, Any] | None]) -> None:
        stop = start + len(ids)
        self._ids[start:stop] = _object_array(ids)
        self._meta[start:stop] = _object_array(meta)
        self._alive[start:stop] = True
        self._any_meta = self._any_meta or any(m is not None for m in meta)
        if self._int_ids is not None:
            if all(type(i) is int and -(2**63) <= i < 2**63 for i in ids):
                self._int_ids[start:stop] = ids
            else:
                self._int_ids = None

    def _reserve(self, size: int) -> None:
        if size <= len(self._ids):
            return
        cap = max(size, 2 * len(self._ids), 16)
        for name in ("_ids", "_meta", "_int_ids", "_alive"):
            old = getattr(self, name)
            if old is not None:
                grown = np.empty(cap, dtype=old.dtype)
                grown[: self._n] = old[: self._n]
                setattr(self, name, grown)


def _object_array(values: Sequence[Any]) -> np.ndarray:
    # np.array(list_of_dicts_or_lists) may build a 2-D array; fill a 1-D one instead.
    out = np.empty(len(values), dtype=object)
    out[:] = list(values) if values else []
    return out


def _check_entries(ids: list[Any], meta: list[Any], deleted: list[Any], where: str) -> None:
    for i, item_id in enumerate(ids):
        if isinstance(item_id, bool) or not isinstance(item_id, int | str):
            raise IndexCorruptError(f"{where}: ids[{i}] is {item_id!r}, expected int or str")
    for i, item in enumerate(meta):
        if item is not None and not isinstance(item, dict):
            raise IndexCorruptError(f"{where}: metadata[{i}] is not an object or null")
    for label in deleted:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(ids):
            raise IndexCorruptError(f"{where}: deleted label {label!r} is not in 0..{len(ids) - 1}")
    if len(set(deleted)) != len(deleted):
        raise IndexCorruptError(f"{where}: a deleted label is listed twice")
