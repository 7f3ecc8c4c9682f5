"""Small corpora for the embed-corpus tests: JSONL, Parquet, and a directory holding both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

_WORDS = ["the", "python", "list", "text", "query", "is", "a", "for", "with", "of"]


def text(i: int) -> str:
    """A distinct short text per number, made of the tiny bundle's vocabulary."""
    return " ".join(_WORDS[(i * k + k) % len(_WORDS)] for k in range(1, 2 + i % 7)) + f" {i}"


def jsonl_rows(start: int, n: int) -> list[dict[str, Any]]:
    """Rows with int and str ids, some with metadata."""
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {"id": i if i % 3 else f"doc-{i}", "text": text(i)}
        if i % 4 == 0:
            row["metadata"] = {"n": i, "tag": "four"}
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, columns: dict[str, Any], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


@pytest.fixture
def corpus_jsonl(tmp_path: Path) -> Path:
    """One JSONL file of 300 rows."""
    return write_jsonl(tmp_path / "in" / "docs.jsonl", jsonl_rows(0, 300))


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A directory with two JSONL files and one Parquet file (ids unique across all)."""
    root = tmp_path / "corpus"
    write_jsonl(root / "a.jsonl", jsonl_rows(0, 150))
    write_jsonl(root / "sub" / "b.jsonl", jsonl_rows(150, 100))
    write_parquet(
        root / "c.parquet",
        {
            "doc_id": [f"pq-{i}" for i in range(120)],
            "body": [text(1000 + i) for i in range(120)],
            "metadata": [json.dumps({"row": i}) if i % 2 else None for i in range(120)],
        },
        row_group_size=50,
    )
    (root / "_SUCCESS").write_text("")  # markers beside parts are skipped
    return root


@pytest.fixture
def make_parquet() -> Callable[..., Path]:
    """``make_parquet(path, columns, row_group_size=None)`` (test modules cannot import this)."""
    return write_parquet


@pytest.fixture
def make_jsonl() -> Callable[[Path, list[dict[str, Any]]], Path]:
    """``make_jsonl(path, rows)``."""
    return write_jsonl
