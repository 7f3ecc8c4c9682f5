"""Writing a vectors directory: clear the target, append numbered parts, manifest last.

The format itself (schema, names, reader) lives in :mod:`umr.runtime.corpus_embed.vectors`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from umr.runtime.corpus_embed.vectors import (
    DEFAULT_ROWS_PER_FILE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    PART_RE,
    VectorsError,
    part_name,
    vector_schema,
)

from umr.atomic import atomic_write_json, fsync_dir
from umr.bundle import sha256_file
from umr.errors import InputValueError


def prepare_out_dir(out: str | os.PathLike[str], *, force: bool) -> Path:
    """Make ``out`` ready for a new run; with ``force`` remove an earlier run's files.

    Only files this format writes are removed (the manifest first, so the directory reads
    as incomplete at once); any other file makes this refuse, so a mistyped ``--out``
    never deletes someone's data.
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputValueError(f"{root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return root
    if not force:
        raise InputValueError(f"{root} already exists and is not empty; pass --force to replace it")
    ours = {MANIFEST_NAME} | {n for n in entries if PART_RE.match(n) or _is_temp(n)}
    foreign = [n for n in entries if n not in ours]
    if foreign:
        raise InputValueError(
            f"{root} holds files that embed-corpus did not write ({', '.join(foreign[:3])}); "
            f"refusing to replace it, even with --force"
        )
    for name in [MANIFEST_NAME, *(n for n in entries if n != MANIFEST_NAME)]:
        with suppress(FileNotFoundError):
            (root / name).unlink()
    fsync_dir(root)
    return root


def _is_temp(name: str) -> bool:
    return name.startswith(".part-") and name.endswith(".tmp")


class VectorWriter:
    """Appends tables to numbered Parquet parts of ``rows_per_file`` rows each.

    Each part is written under a temporary name, fsynced and renamed into place, then
    hashed. Call :meth:`close` for ``{name: sha256}``, then :func:`write_manifest`.
    Columns other than the four of :func:`vector_schema` are dropped, so callers may
    carry bookkeeping columns along.
    """

    def __init__(
        self, out_dir: str | os.PathLike[str], dim: int, rows_per_file: int = DEFAULT_ROWS_PER_FILE
    ) -> None:
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        self.root = Path(out_dir)
        self.schema = vector_schema(dim)
        self.rows_per_file = rows_per_file
        self.count = 0
        self.files: dict[str, str] = {}
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._rows_in_part = 0

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (any row count), starting new parts as they fill."""
        table = table.select(self.schema.names)
        if not table.schema.equals(self.schema):  # a wrong dim or column type is a bug upstream
            raise VectorsError(f"table schema {table.schema} differs from {self.schema}")
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.rows_per_file - self._rows_in_part, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))  # type: ignore[union-attr]
            self._rows_in_part += take
            self.count += take
            start += take
            if self._rows_in_part == self.rows_per_file:
                self._seal()

    def close(self) -> dict[str, str]:
        """Seal the last part; returns ``{file name: sha256}`` of every part, in order."""
        if self._writer is not None:
            self._seal()
        return dict(self.files)

    def abort(self) -> None:
        """Drop the part being written (sealed parts stay; no manifest marks them complete)."""
        if self._writer is not None:
            with suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._tmp is not None:
            with suppress(FileNotFoundError):
                self._tmp.unlink()
            self._tmp = None

    def _open(self) -> None:
        name = part_name(len(self.files))
        self._tmp = self.root / f".{name}.tmp"
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self._rows_in_part = 0

    def _seal(self) -> None:
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        self._writer = None
        fd = os.open(self._tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        name = part_name(len(self.files))
        os.replace(self._tmp, self.root / name)
        fsync_dir(self.root)
        self._tmp = None
        self.files[name] = sha256_file(self.root / name)


def write_manifest(
    out_dir: str | os.PathLike[str],
    *,
    dim: int,
    count: int,
    bundle: str,
    model_sha256: str,
    variant: str,
    files: Mapping[str, str],
    input: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Write ``_umr_vectors.json`` atomically (the last step of a run); returns it."""
    manifest = {
        "format": FORMAT_VERSION,
        "dim": dim,
        "count": count,
        "bundle": bundle,
        "model_sha256": model_sha256,
        "variant": variant,
        "files": dict(files),
        "input": dict(input),
        **extra,
    }
    atomic_write_json(Path(out_dir) / MANIFEST_NAME, manifest)
    return manifest
