"""The served index: searches, and writes that are serialized and persisted.

Items are stored the way ``umr index build`` stores them, ``{"text": ..., "metadata":
{...}}``, so an index built offline can be served and one written by the server can be
searched offline. A write is acknowledged only after it is saved; if saving fails, the
add is rolled back (or the last saved state reloaded after a delete), so memory and
disk agree.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from umr.errors import DuplicateIdError, InputTypeError, InputValueError, UnknownIdError

from .errors import ApiError, from_umr_error

log = logging.getLogger("umr.server")
#: Stored-record keys: the item's text and the user's metadata.
TEXT_KEY, META_KEY = "text", "metadata"


class IndexService:
    """Wraps one index object (any backend) and the location its writes are saved to."""

    def __init__(self, index: Any, location: str | os.PathLike[str] | None) -> None:
        self.index = index
        self.location = None if location is None else os.fspath(location)
        self._writer = threading.Lock()  # one write (change + save) at a time

    def __len__(self) -> int:
        return len(self.index)

    @property
    def dim(self) -> int:
        """Vector dimension of the index."""
        return int(self.index.dim)

    def search(self, vector: np.ndarray, k: int, flt: Mapping[str, Any] | None) -> list[Any]:
        """Hits for one query vector, best first."""
        stored_filter = {f"{META_KEY}.{key}": value for key, value in (flt or {}).items()}
        try:
            return self.index.search(vector[None, :], k=k, filter=stored_filter or None)[0]
        except (InputTypeError, InputValueError) as exc:
            raise from_umr_error(exc, "filter" if "filter" in str(exc) else None) from None

    def check_new(self, ids: Sequence[Any]) -> None:
        """409 naming the first id already present or repeated, before anything is embedded."""
        seen: set[Any] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen or item_id in self.index:
                raise ApiError(
                    409,
                    "duplicate_id",
                    f"items[{i}].id {item_id!r} already exists",
                    f"items[{i}].id",
                )
            seen.add(item_id)

    def add(self, vectors: np.ndarray, ids: list[Any], records: list[dict[str, Any] | None]) -> int:
        """Add and save; returns the new count. Runs in a worker thread."""
        with self._writer:
            try:
                self.index.add(vectors, ids, records)
            except (DuplicateIdError, InputTypeError, InputValueError) as exc:
                raise from_umr_error(exc, "items") from None
            try:
                self._persist()
            except Exception:
                self.index.delete(ids)  # memory must not hold what disk does not
                raise
            return len(self.index)

    def delete(self, ids: list[Any]) -> int:
        """Delete and save; returns the new count. Runs in a worker thread."""
        with self._writer:
            try:
                self.index.delete(ids)
            except (UnknownIdError, InputTypeError, InputValueError) as exc:
                raise from_umr_error(exc, "ids") from None
            try:
                self._persist()
            except Exception:
                self._reload()
                raise
            return len(self.index)

    def _persist(self) -> None:
        if self.location is None:
            return
        try:
            if _is_remote(self.location):
                self.index.save()  # Milvus persists by itself; this flushes
            else:
                self.index.save(self.location)
        except OSError as exc:
            log.error("saving the index failed: %s", exc)
            raise ApiError(
                503, "persist_failed", f"could not save the index: {exc.strerror}"
            ) from None

    def _reload(self) -> None:
        if self.location is None or _is_remote(self.location):
            return
        from umr.runtime.index import open_index

        try:
            self.index = open_index(self.location)
        except Exception:  # nothing saved yet, or unreadable: keep the in-memory state
            log.exception("reloading the index after a failed save failed")


def stored_record(text: str | None, metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the index stores with an item (the ``umr index build`` layout)."""
    record: dict[str, Any] = {}
    if text is not None:
        record[TEXT_KEY] = text
    if metadata:
        record[META_KEY] = dict(metadata)
    return record or None


def split_record(stored: Any) -> tuple[str | None, dict[str, Any] | None]:
    """``(text, metadata)`` of a stored record; a record in another layout is all metadata."""
    if not isinstance(stored, dict):
        return None, None
    if set(stored) <= {TEXT_KEY, META_KEY}:
        text = stored.get(TEXT_KEY)
        meta = stored.get(META_KEY)
        return (text if isinstance(text, str) else None), (meta if isinstance(meta, dict) else None)
    return None, stored


def _is_remote(location: str) -> bool:
    from umr.runtime.index.backends import is_milvus_location

    return is_milvus_location(location)
