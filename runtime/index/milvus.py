"""A Milvus collection behind :class:`Index`'s API (``pip install 'umr[milvus]'``).

Same verbs, ids, metadata, filters, scores and input errors as the local indexes; a bad
call is refused before anything is written. ``uri`` is a Milvus server
(``http://host:19530``, with ``token`` or ``$UMR_MILVUS_TOKEN``) or a local ``.db`` path,
which runs milvus-lite in-process (tests, laptops). See :mod:`.milvus_schema` for the
collection layout.

Differences that come from Milvus itself:

- Milvus persists every write; :meth:`MilvusIndex.save` flushes (seals the rows into
  segments, whose HNSW graphs Milvus then builds in the background; rows not yet in a
  graph are scored exactly), stores the settings (``ef`` included) with the collection,
  and, given a directory, leaves a ``milvus.json`` pointer there (never the token) so
  :func:`~umr.runtime.index.open_index` on that directory reopens the collection.
- Milvus does not enforce unique primary keys: the duplicate check is done here, under a
  lock, so two processes adding the same new id at once can both succeed.
- ``k`` is capped at 16384 and str ids at 4096 UTF-8 bytes; metadata at 64 KiB of JSON.
- milvus-lite compares bools and numbers loosely in filters (``{"x": 1}`` matches
  ``True``); a Milvus server, like the local indexes, keeps them apart.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from umr.atomic import atomic_write_json
from umr.errors import BackendError, UnknownIdError

from . import milvus_schema as ms
from .base import DEFAULT_EF
from .filters import FilterValue, check_filter
from .milvus_client import calls as _calls
from .milvus_client import connect as _connect
from .milvus_client import normalize_uri as _normalize_uri
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

DEFAULT_COLLECTION = "umr"


class MilvusIndex(HnswSettings):
    """An index stored in a Milvus collection (see the module docstring)."""

    KIND: ClassVar[str] = "milvus"
    lookup_chunk: ClassVar[int] = 1000  # pks per existence check
    insert_rows: ClassVar[int] = 2000  # most rows per insert request
    search_rows: ClassVar[int] = 1024  # most queries per search request

    def __init__(self, client: Any, uri: str, collection: str, dim: int, s: ms.Settings) -> None:
        self._client, self._uri, self._collection = client, uri, collection
        self._dim, self._space = dim, s.space
        self._M, self._ef_construction, self._ef = s.M, s.ef_construction, s.ef
        self._mutate = threading.Lock()  # one add/delete at a time: check-then-write
        self._last_seq = 0

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        dim: int,
        space: str = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef: int = DEFAULT_EF,
        *,
        uri: str | os.PathLike[str],
        collection: str = DEFAULT_COLLECTION,
        token: str | None = None,
        overwrite: bool = False,
    ) -> MilvusIndex:
        """A new empty collection; BackendError if it exists, unless ``overwrite``."""
        dim = check_positive_int("dim", dim)
        settings = ms.Settings(
            check_space(space),
            check_positive_int("M", M, 2),
            check_positive_int("ef_construction", ef_construction),
            check_positive_int("ef", ef),
        )
        uri_text = _normalize_uri(uri)
        client = _connect(uri_text, token)
        with _calls(f"{uri_text}: creating collection {collection!r}"):
            if client.has_collection(collection):
                if not overwrite:
                    raise BackendError(
                        f"{uri_text}: collection {collection!r} already exists "
                        "(open it, or pass overwrite=True / --force to replace it)"
                    )
                client.drop_collection(collection)
            client.create_collection(
                collection,
                schema=ms.build_schema(client, dim),
                consistency_level="Strong",  # read-your-writes, as the local indexes
                properties=settings.to_property(),
            )
            # Not create_collection(index_params=...): pymilvus then polls the build of
            # an index over zero rows with a 0.5 s sleep.
            client.create_index(collection, ms.build_index_params(client, settings), sync=False)
            client.load_collection(collection)
        return cls(client, uri_text, collection, dim, settings)

    @classmethod
    def open(
        cls,
        uri: str | os.PathLike[str],
        *,
        collection: str = DEFAULT_COLLECTION,
        token: str | None = None,
        ef: int | None = None,
    ) -> MilvusIndex:
        """Open an existing umr collection (``ef`` overrides the stored default)."""
        uri_text = _normalize_uri(uri)
        client = _connect(uri_text, token)
        where = f"{uri_text} collection {collection!r}"
        with _calls(f"{where}: opening"):
            if not client.has_collection(collection):
                have = ", ".join(client.list_collections()) or "none"
                raise BackendError(f"{where} does not exist (collections there: {have})")
            desc = client.describe_collection(collection)
            dim = ms.read_layout(desc, where)
            index = client.describe_index(collection, ms.VECTOR) or {}
            settings = ms.read_settings(desc.get("properties") or {}, index, where, DEFAULT_EF)
            client.load_collection(collection)  # a reopened collection starts released
        made = cls(client, uri_text, collection, dim, settings)
        if ef is not None:
            made.ef = ef
        return made

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        collection: str | None = None,
        token: str | None = None,
        ef: int | None = None,
    ) -> MilvusIndex:
        """Open the collection a directory's ``milvus.json`` (from :meth:`save`) names
        (``collection`` overrides the one named there)."""
        from .backends import MILVUS_POINTER

        pointer = Path(path) / MILVUS_POINTER
        try:
            info = json.loads(pointer.read_text(encoding="utf-8"))
            uri, named = str(info["uri"]), str(info["collection"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{pointer}: not a readable Milvus pointer ({exc})") from None
        return cls.open(uri, collection=collection or named, token=token, ef=ef)

    def close(self) -> None:
        """Close the client connection (the collection stays as it is)."""
        self._client.close()

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings (dim, space, M, ef_construction: HnswSettings) ----------------------
    @property
    def ef(self) -> int:
        """Default search breadth; settable (kept with the collection by :meth:`save`)."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = check_positive_int("ef", value)

    @property
    def uri(self) -> str:
        """Where the collection lives (an absolute path for milvus-lite)."""
        return self._uri

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._collection

    @property
    def properties(self) -> IndexInfo:
        """Settings and size; ``deleted`` is 0 and ``capacity`` the count (Milvus has neither)."""
        n = len(self)
        return IndexInfo(
            kind=self.KIND,
            dim=self._dim,
            space=self._space,
            M=self._M,
            ef_construction=self._ef_construction,
            ef=self._ef,
            count=n,
            deleted=0,
            capacity=n,
        )

    def __len__(self) -> int:
        with _calls(f"{self._where}: counting"):
            rows = self._client.query(self._collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __contains__(self, item_id: object) -> bool:
        try:
            pk = ms.encode_id(normalize_id(item_id, 0))
        except (TypeError, ValueError):
            return False
        return bool(self._existing([pk]))

    # -- verbs ------------------------------------------------------------------------
    def add(self, vectors: Any, ids: Any, metadata: Any = None) -> None:
        """Add ``vectors`` [n, dim] under new ``ids`` with optional metadata dicts.

        Everything is checked (duplicates against the collection too) before the first
        insert; the inserts themselves go in batches, so a server failure midway can
        leave a prefix of the rows added.
        """
        x = as_matrix(vectors, self._dim, self._space)
        id_list = normalize_ids(ids, len(x))
        meta = check_metadata(metadata, len(x))
        sizes = ms.check_json_size(meta)
        pks = [ms.encode_id(item_id, i) for i, item_id in enumerate(id_list)]
        with self._mutate:
            ms.check_presence(id_list, pks, self._existing(pks), want=False)
            seq = self._stamps(len(x))
            for rows in ms.insert_batches(x, pks, meta, sizes, seq, self.insert_rows):
                with _calls(f"{self._where}: inserting"):
                    self._client.insert(self._collection, rows)

    def search(
        self,
        queries: Any,
        k: int = 10,
        ef: int | None = None,
        filter: Mapping[str, FilterValue] | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best hits per query row, best first; ``filter`` as in :class:`Index`.

        Scores follow :class:`Index`: cosine similarity, inner product, or negative
        squared L2 distance. Milvus needs ``ef >= k``, so ``max(ef, k)`` is sent.
        """
        k = check_k(k)
        q = as_matrix(queries, self._dim, self._space, "queries")
        flt = check_filter(filter)
        breadth = self._ef if ef is None else check_positive_int("ef", ef)
        limit = min(k, ms.MAX_TOPK)
        params = {"metric_type": ms.METRICS[self._space], "params": {"ef": max(breadth, limit)}}
        expr = ms.filter_expr(flt) if flt else ""
        out: list[list[Hit]] = []
        for start in range(0, len(q), self.search_rows):
            with _calls(f"{self._where}: searching"):
                found = self._client.search(
                    self._collection,
                    data=q[start : start + self.search_rows],
                    limit=limit,
                    filter=expr,
                    output_fields=[ms.METADATA],
                    search_params=params,
                    anns_field=ms.VECTOR,
                )
            out.extend(self._hits(row) for row in found)
        return out

    def delete(self, ids: Any) -> None:
        """Remove ``ids``; an unknown or repeated id raises and changes nothing."""
        id_list = normalize_ids(ids)
        pks = [ms.encode_id(item_id, i) for i, item_id in enumerate(id_list)]
        with self._mutate:
            ms.check_presence(id_list, pks, self._existing(pks), want=True)
            for start in range(0, len(pks), self.lookup_chunk):
                with _calls(f"{self._where}: deleting"):
                    self._client.delete(
                        self._collection, ids=pks[start : start + self.lookup_chunk]
                    )

    def get(self, item_id: Id) -> dict[str, Any] | None:
        """The metadata stored with ``item_id`` (UnknownIdError if it is not there)."""
        item_id = normalize_id(item_id, 0)
        with _calls(f"{self._where}: reading"):
            rows = self._client.get(
                self._collection, ids=[ms.encode_id(item_id)], output_fields=[ms.METADATA]
            )
        if not rows:
            raise UnknownIdError(f"id {item_id!r} is not in the index")
        return rows[0].get(ms.METADATA)

    def ids(self) -> list[Id]:
        """Every id, oldest first (by insertion stamp)."""
        rows = sorted(self._scan([ms.PK, ms.SEQ]), key=lambda r: (r[ms.SEQ], r[ms.PK]))
        return [ms.decode_id(r[ms.PK]) for r in rows]

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Flush, store the settings with the collection, and optionally leave a pointer.

        Milvus persists writes by itself; flushing seals them into segments, which it
        then indexes (HNSW) in the background. With ``path``, writes ``path/milvus.json``
        naming the URI and collection (not the token), which ``open_index(path)`` follows.
        """
        settings = ms.Settings(self._space, self._M, self._ef_construction, self._ef)
        with self._mutate, _calls(f"{self._where}: flushing"):
            self._client.flush(self._collection)
            self._client.alter_collection_properties(self._collection, settings.to_property())
        if path is not None:
            from .backends import MILVUS_POINTER

            directory = Path(path)
            directory.mkdir(parents=True, exist_ok=True)
            pointer = {"backend": self.KIND, "uri": self._uri, "collection": self._collection}
            atomic_write_json(directory / MILVUS_POINTER, {**pointer, "dim": self._dim})

    def drop(self) -> None:
        """Delete the whole collection from Milvus (irreversible)."""
        with self._mutate, _calls(f"{self._where}: dropping"):
            self._client.drop_collection(self._collection)

    # -- internals --------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"{self._uri} collection {self._collection!r}"

    def _existing(self, pks: Sequence[str]) -> set[str]:
        """Which of ``pks`` are in the collection."""
        found: set[str] = set()
        for start in range(0, len(pks), self.lookup_chunk):
            with _calls(f"{self._where}: looking up ids"):
                rows = self._client.get(
                    self._collection,
                    ids=list(pks[start : start + self.lookup_chunk]),
                    output_fields=[ms.PK],
                )
            found.update(r[ms.PK] for r in rows)
        return found

    def _stamps(self, n: int) -> np.ndarray:
        # Wall-clock nanoseconds keep ids() in insertion order across processes and
        # reopenings; the max() keeps them increasing within this one.
        start = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = start + n - 1
        return np.arange(start, start + n, dtype=np.int64)

    def _hits(self, row: Sequence[Any]) -> list[Hit]:
        ids = [ms.decode_id(h.id) for h in row]
        dist = [float(h.distance) for h in row]
        # Milvus reports L2 as the squared distance (lower is better); Index negates it.
        scores = [-d for d in dist] if self._space == "l2" else dist
        meta = [(h.get("entity") or {}).get(ms.METADATA) for h in row]
        return make_hits(ids, scores, meta)

    def _scan(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        with _calls(f"{self._where}: listing"):
            it = self._client.query_iterator(
                self._collection, batch_size=1000, filter="", output_fields=fields
            )
            try:
                while batch := it.next():
                    yield from batch
            finally:
                it.close()
