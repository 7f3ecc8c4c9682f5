"""The on-disk format of embedded vectors: Parquet parts plus a manifest written last.

A vectors directory holds::

    part-00000.parquet, part-00001.parquet, ...
        id        string      the item's id as text
        id_type   string      "int" or "str", so integer ids come back as ints
        vector    fixed_size_list<float32>[dim]
        metadata  string      the item's metadata as a JSON object, or null
    _umr_vectors.json
        {"format": 1, "dim", "count", "bundle", "model_sha256", "variant",
         "files": {name: sha256}, "input": {...}}

The manifest is written last and atomically, so a directory without it is incomplete
(a crash or a failed run). :func:`read_vectors` verifies the manifest, every listed
file's sha256, each file's schema and the total row count before it yields anything.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from umr.bundle import sha256_file
from umr.errors import DataError, InputValueError

MANIFEST_NAME = "_umr_vectors.json"
FORMAT_VERSION = 1
#: Rows per Parquet part: ~150 MB at dim 384, small enough to hash and re-read quickly.
DEFAULT_ROWS_PER_FILE = 100_000
#: Rows per :class:`VectorBatch` that :func:`read_vectors` yields.
DEFAULT_READ_ROWS = 8192
ID_TYPES = ("int", "str")
PART_RE = re.compile(r"^part-\d{5,}\.parquet$")
_REQUIRED = {
    "format": int,
    "dim": int,
    "count": int,
    "bundle": str,
    "model_sha256": str,
    "variant": str,
    "files": dict,
}


class VectorsError(DataError, ValueError):
    """A vectors directory is incomplete, malformed, or fails its checksums; names the file."""


@dataclass(frozen=True)
class VectorBatch:
    """Consecutive rows of a vectors directory."""

    ids: list[int | str]
    vectors: np.ndarray  # float32 [n, dim], unit norm as the embedder wrote them
    metadata: list[dict[str, Any] | None]

    def __len__(self) -> int:
        return len(self.ids)


def vector_schema(dim: int) -> pa.Schema:
    """The Arrow schema of every part file for vectors of ``dim`` floats."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("id_type", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("metadata", pa.string(), nullable=True),
        ]
    )


def part_name(index: int) -> str:
    """File name of the ``index``-th part."""
    return f"part-{index:05d}.parquet"


def encode_id(item_id: int | str) -> tuple[str, str]:
    """``(text, id_type)`` for an id; bools are refused since they would read back as ints."""
    if isinstance(item_id, bool) or not isinstance(item_id, (int, str)):
        raise InputValueError(f"id {item_id!r} must be an integer or a string")
    return (str(item_id), "int") if isinstance(item_id, int) else (item_id, "str")


def decode_id(text: str, id_type: str) -> int | str:
    """Inverse of :func:`encode_id`."""
    if id_type == "str":
        return text
    if id_type == "int":
        return int(text)
    raise ValueError(f"id_type {id_type!r} is not one of {ID_TYPES}")


def to_table(
    ids: Sequence[int | str],
    vectors: np.ndarray,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
) -> pa.Table:
    """Build a table in the part-file schema from Python ids, a float32 matrix and metadata."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise InputValueError(f"vectors shape {vectors.shape} does not match {len(ids)} ids")
    meta = metadata if metadata is not None else [None] * len(ids)
    if len(meta) != len(ids):
        raise InputValueError(f"{len(meta)} metadata entries for {len(ids)} ids")
    encoded = [encode_id(i) for i in ids]
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "id": pa.array([e[0] for e in encoded], pa.string()),
            "id_type": pa.array([e[1] for e in encoded], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            "metadata": pa.array([_meta_json(m) for m in meta], pa.string()),
        },
        schema=vector_schema(dim),
    )


def _meta_json(meta: Mapping[str, Any] | None) -> str | None:
    # Empty metadata is stored as null: "no metadata" has one spelling on disk.
    return json.dumps(dict(meta), ensure_ascii=False, sort_keys=True) if meta else None


def read_vectors_info(vectors_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated manifest of a vectors directory (fields and listed files; no hashing).

    Raises :class:`VectorsError` when the manifest is missing (an incomplete run),
    unreadable, of an unknown format, or lists a file that is not there.
    """
    root = Path(vectors_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise VectorsError(f"vectors directory not found: {root}")
    if not path.is_file():
        raise VectorsError(f"{root}: no {MANIFEST_NAME}; an incomplete run, or not vectors")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorsError(f"{path}: unreadable manifest ({exc})") from None
    _check_manifest(info, path)
    for name in info["files"]:
        if not (root / name).is_file():
            raise VectorsError(f"{path}: lists {name}, which is missing")
    return info


def _check_manifest(info: object, path: Path) -> None:
    if not isinstance(info, dict):
        raise VectorsError(f"{path}: manifest is not a JSON object")
    for key, kind in _REQUIRED.items():
        value = info.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise VectorsError(f"{path}: {key!r} must be a {kind.__name__}, got {value!r}")
    if info["format"] != FORMAT_VERSION:
        raise VectorsError(f"{path}: format {info['format']} is not {FORMAT_VERSION}")
    if info["dim"] < 1 or info["count"] < 0:
        raise VectorsError(f"{path}: dim {info['dim']} / count {info['count']} out of range")
    for name, digest in info["files"].items():
        # Names come from the manifest: keep them inside the directory.
        if not PART_RE.match(name) or not isinstance(digest, str) or len(digest) != 64:
            raise VectorsError(f"{path}: bad files entry {name!r}: {digest!r}")


def read_vectors(
    vectors_dir: str | os.PathLike[str], *, batch_rows: int = DEFAULT_READ_ROWS
) -> Iterator[VectorBatch]:
    """Verify a vectors directory, then return an iterator of :class:`VectorBatch`, in order.

    Everything checkable up front is checked before this returns: the manifest, each
    file's sha256 (a tampered or truncated part raises), each part's schema against the
    manifest's dim, and the total row count. Rows are then decoded lazily; a bad row
    (unknown id_type, malformed metadata, repeated id) raises naming ``file:row``.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    root = Path(vectors_dir)
    info = read_vectors_info(root)
    names = list(info["files"])
    for name in names:
        actual = sha256_file(root / name)
        if actual != info["files"][name]:
            raise VectorsError(
                f"{root / name}: sha256 {actual[:12]}... differs from the manifest's "
                f"{info['files'][name][:12]}... (tampered or corrupt)"
            )
    expected = vector_schema(info["dim"])
    rows = 0
    for name in names:
        meta = _parquet_metadata(root / name)
        if not meta.schema.to_arrow_schema().equals(expected):
            raise VectorsError(f"{root / name}: schema differs from dim {info['dim']} vectors")
        rows += meta.num_rows
    if rows != info["count"]:
        raise VectorsError(f"{root}: parts hold {rows} rows, the manifest says {info['count']}")
    return _iter_batches(root, names, info["dim"], batch_rows)


def _parquet_metadata(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise VectorsError(f"{path}: not a readable Parquet file ({exc})") from None


def _iter_batches(root: Path, names: list[str], dim: int, batch_rows: int) -> Iterator[VectorBatch]:
    seen: set[int | str] = set()
    for name in names:
        row = 0
        for rb in pq.ParquetFile(root / name).iter_batches(batch_size=batch_rows):
            path = f"{root / name}"
            batch = _decode(rb, dim, path, row)
            for offset, item_id in enumerate(batch.ids):
                if item_id in seen:
                    raise VectorsError(f"{path}:{row + offset + 1}: duplicate id {item_id!r}")
                seen.add(item_id)
            row += len(batch)
            yield batch


def _decode(rb: pa.RecordBatch, dim: int, path: str, first_row: int) -> VectorBatch:
    """Arrow record batch -> VectorBatch; ``first_row`` (0-based) numbers rows in errors."""
    ids: list[int | str] = []
    for i, (text, kind) in enumerate(
        zip(rb.column("id").to_pylist(), rb.column("id_type").to_pylist(), strict=True)
    ):
        try:
            ids.append(decode_id(text, kind))
        except (ValueError, TypeError) as exc:
            raise VectorsError(f"{path}:{first_row + i + 1}: bad id {text!r} ({exc})") from None
    vec_col = rb.column("vector")
    if vec_col.null_count:
        raise VectorsError(f"{path}: null vector in rows {first_row + 1}..{first_row + len(rb)}")
    # flatten() honours the batch's offset into the column (.values would not).
    vectors = vec_col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    metadata = [
        _parse_meta(m, f"{path}:{first_row + i + 1}")
        for i, m in enumerate(rb.column("metadata").to_pylist())
    ]
    return VectorBatch(ids, np.ascontiguousarray(vectors, dtype=np.float32), metadata)


def _parse_meta(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VectorsError(f"{where}: metadata is not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise VectorsError(f"{where}: metadata is not a JSON object")
    return value
