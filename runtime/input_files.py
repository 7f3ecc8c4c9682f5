"""Items to index, read from a text file (one item per line) or JSONL.

JSONL records: ``{"id": 7 | "doc-7", "text": "...", "metadata": {...}}``; only ``text`` is
required (the id defaults to the line number). With ``images=True`` a record may carry
``"image": "path"`` (relative to the JSONL file's folder, or absolute) instead of or with
its text: an image, or a text+image pair. Every line is validated before anything is
embedded, and every error names the file and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umr.errors import InputValueError

FORMATS = ("auto", "lines", "jsonl")


@dataclass(frozen=True)
class Item:
    """One thing to embed and index."""

    id: int | str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    image: Path | None = None  # the image file (absolute), for image and text+image items

    @property
    def kind(self) -> str:
        """``"text"``, ``"image"`` (no text, or ``""``) or ``"text+image"``."""
        if self.image is None:
            return "text"
        return "text+image" if self.text else "image"


def _detect(path: Path, first_line: str) -> str:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "lines"


def _check_text(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputValueError(f"{where}: text is not valid Unicode (lone surrogate)") from None
    return text


def _parse_record(raw: str, where: str, lineno: int, base: Path | None) -> Item:
    """``base`` is the JSONL file's folder when records may carry images, else None."""
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise InputValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    image = None if base is None else _image_path(rec, base, where)
    text = rec.get("text", "" if image is not None else None)
    if not isinstance(text, str):
        need = "'text' must be a string" + (" (or give an 'image')" if base else "")
        raise InputValueError(f"{where}: {need}, got {type(text).__name__}")
    item_id = rec.get("id", lineno)
    if isinstance(item_id, bool) or not isinstance(item_id, (int, str)):
        raise InputValueError(f"{where}: 'id' must be an integer or a string")
    metadata = rec.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InputValueError(f"{where}: 'metadata' must be an object")
    return Item(item_id, _check_text(text, where), metadata, lineno, image)


def _image_path(rec: dict[str, Any], base: Path, where: str) -> Path | None:
    ref = rec.get("image")
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref.strip():
        raise InputValueError(f"{where}: 'image' must be a non-empty path string")
    path = Path(os.path.normpath(base / ref))  # an absolute ref stays absolute
    if not path.is_file():
        raise InputValueError(f"{where}: image file not found: {path}")
    return path


def read_items(
    path: str | os.PathLike[str], fmt: str = "auto", *, images: bool = False
) -> list[Item]:
    """Read and validate every item of ``path``; blank lines are skipped.

    ``images=True`` lets JSONL records carry an ``image`` path (see the module doc);
    its file must exist. Raises ``InputValueError`` naming the file and line of the
    first bad record, a duplicate id (with the line where it first appeared), or an
    empty file.
    """
    if fmt not in FORMATS:
        raise InputValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    p = Path(path)
    if not p.is_file():
        raise InputValueError(f"input file not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputValueError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    numbered = [(i, ln) for i, ln in enumerate(lines, start=1) if ln.strip()]
    if not numbered:
        raise InputValueError(f"{p}: no items (the file is empty)")
    kind = _detect(p, numbered[0][1]) if fmt == "auto" else fmt
    items: list[Item] = []
    first_seen: dict[int | str, int] = {}
    base = p.resolve().parent if images else None
    for lineno, raw in numbered:
        where = f"{p}:{lineno}"
        if kind == "jsonl":
            item = _parse_record(raw, where, lineno, base)
        else:
            item = Item(lineno, _check_text(raw.strip(), where), {}, lineno)
        if item.id in first_seen:
            raise InputValueError(
                f"{where}: duplicate id {item.id!r} (first on line {first_seen[item.id]})"
            )
        first_seen[item.id] = lineno
        items.append(item)
    return items
