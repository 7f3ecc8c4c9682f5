"""Vector indexes: :class:`Index` (HNSW, approximate), :class:`ExactIndex`, and Milvus.

The two local kinds share one on-disk format family (a directory with a self-checksummed
``manifest.json`` and generation-numbered data files); :func:`load` opens either kind.
Every backend, Milvus included (``umr[milvus]``), shares one API; :func:`open_index`
opens any of them by location and :data:`BACKENDS` lists them (:func:`list_backends`).
Searches take ``filter={"key": value}`` (metadata equality, see :mod:`.filters`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .backends import BACKENDS, create_index, get_backend, list_backends, open_index
from .base import DEFAULT_EF
from .exact import ExactIndex
from .hnsw import Index
from .store import read_manifest
from .types import Hit, IndexInfo

__all__ = [
    "BACKENDS",
    "DEFAULT_EF",
    "ExactIndex",
    "Hit",
    "Index",
    "IndexInfo",
    "create_index",
    "get_backend",
    "list_backends",
    "load",
    "open_index",
]


def load(path: str | os.PathLike[str], *, num_threads: int = -1) -> Index | ExactIndex:
    """Load a saved index of either kind, choosing the class from its manifest."""
    kind = read_manifest(Path(path)).kind
    cls = Index if kind == Index.KIND else ExactIndex
    return cls.load(path, num_threads=num_threads)
