"""Corpus input: find JSONL/Parquet files, validate every row up front, read them as doc tables.

Both engines read through :func:`read_docs`, which yields Arrow tables in one schema
(:data:`DOC_SCHEMA`), so the batch function and the writer never see the input format.

JSONL rows go through :func:`umr.runtime.input_files.read_items` (the validation of
``umr index build``): ``{"id": 7 | "doc-7", "text": "...", "image": "a.png",
"metadata": {...}}`` with ``text`` or ``image`` (or both, a text+image pair) required;
a missing id is the line number. Parquet rows come from the ``--text-field`` column (a
string), the ``--id-field`` column (an integer or a string; when the column is absent the
1-based row number), an optional ``--image-field`` column (image paths; null for a
text row) and an optional ``metadata`` column (a struct, or a string holding a JSON
object). Image paths are relative to the input file's folder, or absolute; every image
file must exist when the input is scanned, and doc tables carry them absolute, so Ray
workers need no idea where the input was. Errors name ``file:line`` for JSONL and
``file:row N`` for Parquet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from umr.runtime.input_files import read_items

from umr.errors import InputValueError

#: File suffix -> input kind.
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: Rows per doc table that :func:`read_docs` yields (one Ray block).
DEFAULT_TABLE_ROWS = 1024
METADATA_COLUMN = "metadata"

DOC_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("id_type", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # "" for an image alone
        pa.field("metadata", pa.string(), nullable=True),
        pa.field("image", pa.string(), nullable=True),  # absolute path; null: a text row
    ]
)


@dataclass(frozen=True)
class Fields:
    """Which Parquet columns hold the text, the id and the image path (JSONL always uses
    "text", "id" and "image")."""

    text: str = "text"
    id: str = "id"
    image: str = "image"


DEFAULT_FIELDS = Fields()


@dataclass(frozen=True)
class InputFile:
    """One validated input file and how many rows it holds."""

    path: Path
    kind: str  # "jsonl" or "parquet"
    rows: int
    images: int = 0  # rows carrying an image (image alone or text+image)


@dataclass(frozen=True)
class Corpus:
    """Every input file of a run, validated: ids are unique across all of them."""

    root: Path
    files: tuple[InputFile, ...]
    fields: Fields

    @property
    def count(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def image_count(self) -> int:
        """Rows carrying an image."""
        return sum(f.images for f in self.files)

    def describe(self) -> dict[str, Any]:
        """What the vectors manifest records as its ``input``."""
        return {
            "path": str(self.root),
            "files": [
                str(f.path.relative_to(self.root)) if self.root.is_dir() else f.path.name
                for f in self.files
            ],
            "kinds": sorted({f.kind for f in self.files}),
            "text_field": self.fields.text,
            "id_field": self.fields.id,
            "image_field": self.fields.image,
            "count": self.count,
            "image_rows": self.image_count,
        }


def discover(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """``(file, kind)`` for a file, or for every JSONL/Parquet file under a directory, sorted."""
    root = Path(path)
    if root.is_file():
        kind = SUFFIXES.get(root.suffix.lower())
        if kind is None:
            raise InputValueError(f"{root}: unknown input type; expected {', '.join(SUFFIXES)}")
        return [(root, kind)]
    if not root.is_dir():
        raise InputValueError(f"input not found: {root}")
    found = sorted(
        (p, SUFFIXES[p.suffix.lower()])
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not _hidden(p.relative_to(root))
    )
    if not found:
        raise InputValueError(f"{root}: no {', '.join(SUFFIXES)} files in this directory")
    return found


def _hidden(rel: Path) -> bool:
    # Skip dot files and _SUCCESS-style markers that Spark/Ray leave beside their parts.
    return any(part.startswith((".", "_")) for part in rel.parts)


def scan(path: str | os.PathLike[str], fields: Fields = DEFAULT_FIELDS) -> Corpus:
    """Validate every row of the input before anything is embedded.

    Raises ``InputValueError`` naming the file and line/row of the first bad row, or of
    an id that repeats one seen earlier (in this file or another), or an empty input.
    """
    root = Path(path).resolve()
    # id -> (file number, line/row): ints, not strings, so millions of ids stay affordable.
    seen: dict[tuple[str, str], tuple[int, int]] = {}
    found = discover(root)
    files = []
    for number, (file, kind) in enumerate(found):
        rows = images = 0
        for table, positions in _validated_tables(file, kind, fields, DEFAULT_TABLE_ROWS):
            keys = zip(table["id_type"].to_pylist(), table["id"].to_pylist(), strict=True)
            for key, pos in zip(keys, positions, strict=True):
                if key in seen:
                    first_file, first_pos = seen[key]
                    raise InputValueError(
                        f"{_where(file, kind, pos)}: duplicate id {_show(key)} (first at "
                        f"{_where(*found[first_file], first_pos)})"
                    )
                seen[key] = (number, pos)
            rows += table.num_rows
            images += table.num_rows - table["image"].null_count
        files.append(InputFile(file, kind, rows, images))
    corpus = Corpus(root, tuple(files), fields)
    if corpus.count == 0:
        raise InputValueError(f"{root}: no rows to embed")
    return corpus


def _where(path: Path, kind: str, pos: int) -> str:
    """``file:line`` for JSONL, ``file:row N`` (1-based) for Parquet."""
    return f"{path}:{pos}" if kind == "jsonl" else f"{path}:row {pos}"


def _show(key: tuple[str, str]) -> str:
    return key[1] if key[0] == "int" else repr(key[1])


def read_docs(
    file: InputFile, fields: Fields = DEFAULT_FIELDS, rows: int = DEFAULT_TABLE_ROWS
) -> Iterator[pa.Table]:
    """Doc tables (:data:`DOC_SCHEMA`) of at most ``rows`` rows, in file order."""
    for table, _ in _validated_tables(file.path, file.kind, fields, rows):
        yield table


def _validated_tables(
    path: Path, kind: str, fields: Fields, rows: int
) -> Iterator[tuple[pa.Table, list[int]]]:
    """Doc tables, each with the line (JSONL) or 1-based row (Parquet) of every row."""
    if kind == "jsonl":
        yield from _jsonl_tables(path, rows)
    else:
        yield from _parquet_tables(path, fields, rows)


def _jsonl_tables(path: Path, rows: int) -> Iterator[tuple[pa.Table, list[int]]]:
    # Validates every line (image files must exist), names file:line.
    items = read_items(path, "jsonl", images=True)
    for start in range(0, len(items), rows):
        chunk = items[start : start + rows]
        table = _doc_table(
            [i.id for i in chunk],
            [i.text for i in chunk],
            [_meta(i.metadata) for i in chunk],
            [None if i.image is None else str(i.image) for i in chunk],
        )
        yield table, [i.line for i in chunk]


def _parquet_tables(path: Path, fields: Fields, rows: int) -> Iterator[tuple[pa.Table, list[int]]]:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputValueError(f"{path}: not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if fields.text not in names:
        raise InputValueError(f"{path}: no text column {fields.text!r} (columns: {names})")
    if fields.id != Fields.id and fields.id not in names:
        raise InputValueError(f"{path}: no id column {fields.id!r} (columns: {names})")
    columns = [c for c in (fields.text, fields.id, fields.image, METADATA_COLUMN) if c in names]
    first = 0
    for rb in pf.iter_batches(batch_size=rows, columns=list(dict.fromkeys(columns))):
        table = _parquet_docs(rb, fields, path, first)
        yield table, list(range(first + 1, first + rb.num_rows + 1))
        first += rb.num_rows


def _parquet_docs(rb: pa.RecordBatch, fields: Fields, path: Path, first: int) -> pa.Table:
    """One Parquet record batch -> doc table, checking types and nulls (rows are 1-based)."""
    if fields.image in rb.schema.names:
        images = _parquet_images(rb, fields, path, first)
        has = pa.array([i is not None for i in images])
        text = _column(rb, fields.text, path, first, ("string",), null_ok=has).fill_null("")
    else:
        images = [None] * rb.num_rows
        text = _column(rb, fields.text, path, first, ("string",))
    if fields.id in rb.schema.names:
        ids = _column(rb, fields.id, path, first, ("string", "integer")).to_pylist()
    else:
        ids = list(range(first + 1, first + rb.num_rows + 1))
    if METADATA_COLUMN in rb.schema.names:
        meta = _parquet_meta(rb.column(METADATA_COLUMN), path, first)
    else:
        meta = [None] * rb.num_rows
    return _doc_table(ids, text.to_pylist(), meta, images)


def _parquet_images(rb: pa.RecordBatch, fields: Fields, path: Path, first: int) -> list[str | None]:
    """Absolute image paths (None where a row has no image); each file must exist."""
    col = _column(rb, fields.image, path, first, ("string",), null_ok=pa.array([True] * len(rb)))
    base = path.resolve().parent
    out: list[str | None] = []
    for offset, ref in enumerate(col.to_pylist()):
        where = f"{path}:row {first + offset + 1}"
        out.append(None if ref is None else str(_image_file(ref, base, where, fields.image)))
    return out


def _image_file(ref: str, base: Path, where: str, name: str) -> Path:
    if not ref.strip():
        raise InputValueError(f"{where}: {name!r} must be a non-empty path")
    image = base / ref  # an absolute path stays absolute
    if not image.is_file():
        raise InputValueError(f"{where}: image file not found: {image}")
    return image


def _column(
    rb: pa.RecordBatch,
    name: str,
    path: Path,
    first: int,
    kinds: tuple[str, ...],
    null_ok: pa.Array | None = None,
) -> Any:
    """Column ``name`` checked for type and nulls; ``null_ok`` marks rows that may be null."""
    col = rb.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    ok = "string" in kinds and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type))
    ok = ok or ("integer" in kinds and pa.types.is_integer(col.type))
    if not ok:
        raise InputValueError(
            f"{path}: column {name!r} is {col.type}, expected {' or '.join(kinds)}"
        )
    missing = pc.is_null(col) if null_ok is None else pc.and_(pc.is_null(col), pc.invert(null_ok))
    if col.null_count and pc.any(missing).as_py():
        row = first + pc.index(missing, True).as_py() + 1
        also = "" if null_ok is None else " and the row has no image"
        raise InputValueError(f"{path}:row {row}: {name!r} is null{also}")
    return col


def _parquet_meta(col: pa.Array, path: Path, first: int) -> list[str | None]:
    is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if not (is_text or pa.types.is_struct(col.type)):
        raise InputValueError(
            f"{path}: column 'metadata' is {col.type}, expected a struct or JSON strings"
        )
    out: list[str | None] = []
    for offset, value in enumerate(col.to_pylist()):
        if is_text and value is not None:
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InputValueError(
                    f"{path}:row {first + offset + 1}: metadata is not JSON ({exc.msg})"
                ) from None
            if not isinstance(value, dict):
                raise InputValueError(
                    f"{path}:row {first + offset + 1}: metadata must be an object"
                )
        out.append(_meta(value))
    return out


def _meta(meta: dict[str, Any] | None) -> str | None:
    # Same spelling as the vectors format: empty metadata is null, keys sorted. default=str
    # turns Parquet dates and decimals into their usual text instead of failing the run.
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str) if meta else None


def _doc_table(
    ids: list[Any], texts: list[str], meta: list[str | None], images: list[str | None]
) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([str(i) for i in ids], pa.string()),
            "id_type": pa.array(["str" if isinstance(i, str) else "int" for i in ids], pa.string()),
            "text": pa.array(texts, pa.string()),
            "metadata": pa.array(meta, pa.string()),
            "image": pa.array(images, pa.string()),
        },
        schema=DOC_SCHEMA,
    )
