"""The read-only HNSW settings every backend exposes the same way."""

from __future__ import annotations


class HnswSettings:
    """``dim``, ``space``, ``M`` and ``ef_construction`` as read-only properties.

    Backends set ``_dim``, ``_space``, ``_M`` and ``_ef_construction`` in ``__init__``;
    ``ef`` stays theirs, since changing it means different things per backend.
    """

    _dim: int
    _space: str
    _M: int
    _ef_construction: int

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def space(self) -> str:
        """``"cosine"``, ``"ip"`` or ``"l2"``."""
        return self._space

    @property
    def M(self) -> int:
        """HNSW graph degree (links per node on upper levels)."""
        return self._M

    @property
    def ef_construction(self) -> int:
        """HNSW candidate list size used while building."""
        return self._ef_construction
