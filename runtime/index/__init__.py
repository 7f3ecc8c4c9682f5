"""Crash-safe vector indexes: :class:`Index` (HNSW, approximate) and :class:`ExactIndex`.

Both share one API and one on-disk format family (a directory with a self-checksummed
``manifest.json`` and generation-numbered data files). :func:`load` opens either kind.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import DEFAULT_EF
from .exact import ExactIndex
from .hnsw import Index
from .store import read_manifest
from .types import Hit, IndexInfo

__all__ = ["DEFAULT_EF", "ExactIndex", "Hit", "Index", "IndexInfo", "load"]


def load(path: str | os.PathLike[str], *, num_threads: int = -1) -> Index | ExactIndex:
    """Load a saved index of either kind, choosing the class from its manifest."""
    kind = read_manifest(Path(path)).kind
    cls = Index if kind == Index.KIND else ExactIndex
    return cls.load(path, num_threads=num_threads)
