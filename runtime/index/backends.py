"""The index backends, by name, and one entry point that opens or creates any of them.

Every backend class offers the same verbs (``add``, ``search``, ``delete``, ``get``,
``ids``, ``save``, ``len``, ``in``, ``properties``) and the same score convention
(higher is better; cosine similarity in cosine space). Backends whose packages are
optional are imported only when asked for, so ``umr`` stays light without them.

    >>> list_backends()
    ['exact', 'hnswlib', 'milvus']
    >>> index = open_index("idx/")                      # a directory saved by Index/ExactIndex
    >>> index = open_index("milvus.db", collection="docs")  # milvus-lite, in-process
    >>> index = open_index("http://milvus:19530", collection="docs", token="...")
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from umr.errors import BackendError

from .base import DEFAULT_EF
from .milvus_client import SCHEMES as MILVUS_SCHEMES  # a path ending in .db: milvus-lite

#: The file :meth:`MilvusIndex.save` writes into a directory to point at its collection.
MILVUS_POINTER = "milvus.json"


@dataclass(frozen=True)
class Backend:
    """One registered backend: where its class lives and what installs it."""

    name: str
    summary: str
    target: str  # "module:Class", the module relative to umr.runtime.index
    requires: tuple[str, ...] = ()  # top-level modules it imports
    extra: str | None = None  # the umr extra that installs them

    def load_class(self) -> type:
        """Import and return the backend class (BackendError if a package is missing)."""
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module, __package__), attr)
        except ImportError as exc:
            hint = f"pip install 'umr[{self.extra}]'" if self.extra else "reinstall umr"
            raise BackendError(
                f"index backend {self.name!r} needs {exc.name or ', '.join(self.requires)}, "
                f"which is not installed: {hint}"
            ) from exc


BACKENDS: Mapping[str, Backend] = MappingProxyType(
    {
        "hnswlib": Backend("hnswlib", "approximate HNSW in-process (default)", ".hnsw:Index"),
        "exact": Backend("exact", "brute-force NumPy search in-process", ".exact:ExactIndex"),
        "milvus": Backend(
            "milvus",
            "a Milvus collection (server by URI, or milvus-lite for a .db path)",
            ".milvus:MilvusIndex",
            requires=("pymilvus", "milvus_lite"),
            extra="milvus",
        ),
    }
)
DEFAULT_BACKEND = "hnswlib"


def list_backends() -> list[str]:
    """Names of every registered backend (installed or not), sorted."""
    return sorted(BACKENDS)


def get_backend(name: str) -> type:
    """The class of backend ``name``; BackendError names the known ones if unknown."""
    spec = BACKENDS.get(name)
    if spec is None:
        raise BackendError(
            f"unknown index backend {name!r}; available: {', '.join(list_backends())}"
        )
    return spec.load_class()


def is_milvus_location(location: str | os.PathLike[str]) -> bool:
    """True for a Milvus URI, or a path ending in ``.db`` (a milvus-lite database)."""
    text = os.fspath(location)
    return text.startswith(MILVUS_SCHEMES) or text.rstrip("/").endswith(".db")


def backend_for(location: str | os.PathLike[str]) -> str:
    """The backend an existing ``location`` holds, judged by its name and contents."""
    if is_milvus_location(location):
        return "milvus"
    directory = Path(location)
    if (directory / MILVUS_POINTER).is_file():
        return "milvus"
    from .store import read_manifest  # IndexCorruptError names a missing or bad directory

    return "hnswlib" if read_manifest(directory).kind == "hnsw" else "exact"


def open_index(
    location: str | os.PathLike[str], *, backend: str | None = None, **options: Any
) -> Any:
    """Open an existing index of any backend.

    ``location`` is a directory saved by :class:`Index`/:class:`ExactIndex` (or by
    ``MilvusIndex.save``, which leaves a pointer there), a Milvus URI (``http://``,
    ``https://``, ``tcp://``) or a milvus-lite ``.db`` path. ``backend`` overrides the
    guess. ``options`` go to the backend's opener: ``num_threads`` for the local kinds;
    ``collection``, ``token`` and ``ef`` for Milvus.
    """
    name = backend or backend_for(location)
    cls = get_backend(name)
    if name == "milvus":
        if not is_milvus_location(location):
            return cls.load(location, **options)
        return cls.open(os.fspath(location), **options)
    extra = sorted(set(options) - {"num_threads"})
    if extra:
        raise BackendError(f"{', '.join(extra)}: not an option of the {name} backend")
    return cls.load(location, **options)


def create_index(
    backend: str,
    dim: int,
    *,
    space: str = "cosine",
    M: int = 16,
    ef_construction: int = 200,
    ef: int = DEFAULT_EF,
    **options: Any,
) -> Any:
    """A new empty index of ``backend``; ``options`` go to its ``create``.

    Local kinds take ``capacity`` and ``num_threads``; Milvus takes ``uri``,
    ``collection``, ``token`` and ``overwrite``.
    """
    cls = get_backend(backend)
    return cls.create(dim, space=space, M=M, ef_construction=ef_construction, ef=ef, **options)
