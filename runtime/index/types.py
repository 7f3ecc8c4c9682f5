"""Frozen descriptions returned by the indexes."""

from __future__ import annotations

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


_new_hit = object.__new__
_set_id = Hit.id.__set__  # type: ignore[attr-defined]  # slot descriptors
_set_score = Hit.score.__set__  # type: ignore[attr-defined]
_set_metadata = Hit.metadata.__set__  # type: ignore[attr-defined]


def make_hit(item_id: int | str, score: float, metadata: dict[str, Any] | None) -> Hit:
    """Build a Hit without the frozen ``__init__``'s per-field ``object.__setattr__``.

    Search builds k Hits per query; this halves that cost, which is most of the
    wrapper's overhead over raw hnswlib.
    """
    hit = _new_hit(Hit)
    _set_id(hit, item_id)
    _set_score(hit, score)
    _set_metadata(hit, metadata)
    return hit
