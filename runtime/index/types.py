"""Frozen descriptions returned by the indexes."""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result. ``score`` is higher-is-better in every space.

    cosine: cosine similarity; ip: inner product; l2: negative squared L2 distance.
    ``metadata`` is the dict stored at ``add`` (shared with the index: do not mutate it).
    """

    id: int | str
    score: float
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class IndexInfo:
    """A snapshot of an index's settings and size (``Index.properties``)."""

    kind: str
    dim: int
    space: str
    M: int
    ef_construction: int
    ef: int
    count: int
    deleted: int
    capacity: int


_set_id = Hit.id.__set__  # type: ignore[attr-defined]  # slot descriptors
_set_score = Hit.score.__set__  # type: ignore[attr-defined]
_set_metadata = Hit.metadata.__set__  # type: ignore[attr-defined]


def make_hits(
    ids: list[int | str], scores: list[float], metadata: list[dict[str, Any] | None] | None
) -> list[Hit]:
    """Build one Hit per (id, score, metadata) without running any Python code per hit.

    The frozen ``__init__`` costs a Python frame and three ``object.__setattr__`` calls
    per hit, which is most of the wrapper's overhead over raw hnswlib. Here every loop
    runs in C: objects come from ``object.__new__`` and fields are set through the slot
    descriptors (``metadata=None`` means no hit has any).
    """
    n = len(ids)
    hits = list(map(object.__new__, itertools.repeat(Hit, n)))
    _drain(map(_set_id, hits, ids))
    _drain(map(_set_score, hits, scores))
    _drain(map(_set_metadata, hits, itertools.repeat(None, n) if metadata is None else metadata))
    return hits


_drain = collections.deque(maxlen=0).extend  # consumes an iterator in C
