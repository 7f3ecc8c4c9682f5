"""Corpus input: discovery, JSONL and Parquet rows, and errors that name file:line / file:row."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from umr.runtime.corpus_embed.reader import DOC_SCHEMA, Fields, read_docs, scan

from umr.errors import InputValueError

PQ = Fields(text="body", id="doc_id")


def all_docs(corpus) -> pa.Table:  # type: ignore[no-untyped-def]
    return pa.concat_tables(t for f in corpus.files for t in read_docs(f, corpus.fields, rows=64))


def test_jsonl_rows_keep_id_types_and_metadata(corpus_jsonl: Path) -> None:
    corpus = scan(corpus_jsonl)
    assert corpus.count == 300 and [f.kind for f in corpus.files] == ["jsonl"]
    docs = all_docs(corpus)
    assert docs.schema.equals(DOC_SCHEMA)
    assert docs["id"].to_pylist()[:4] == ["doc-0", "1", "2", "doc-3"]
    assert docs["id_type"].to_pylist()[:4] == ["str", "int", "int", "str"]
    assert json.loads(docs["metadata"][0].as_py()) == {"n": 0, "tag": "four"}
    assert docs["metadata"][1].as_py() is None


def test_directory_mixes_jsonl_and_parquet_in_sorted_order(corpus_dir: Path) -> None:
    corpus = scan(corpus_dir, PQ)
    names = [str(f.path.relative_to(corpus_dir)) for f in corpus.files]
    assert names == ["a.jsonl", "c.parquet", "sub/b.jsonl"]  # _SUCCESS skipped
    assert [f.rows for f in corpus.files] == [150, 120, 100] and corpus.count == 370
    docs = all_docs(corpus)
    pq_rows = docs.slice(150, 120)
    assert pq_rows["id"][0].as_py() == "pq-0" and pq_rows["id_type"][0].as_py() == "str"
    assert pq_rows["metadata"][0].as_py() is None
    assert json.loads(pq_rows["metadata"][1].as_py()) == {"row": 1}
    assert corpus.describe()["files"] == names


def test_parquet_without_id_column_numbers_rows(tmp_path: Path, make_parquet) -> None:
    path = make_parquet(tmp_path / "t.parquet", {"text": ["a", "b", "c"]})
    docs = all_docs(scan(path))
    assert docs["id"].to_pylist() == ["1", "2", "3"]
    assert docs["id_type"].to_pylist() == ["int"] * 3


def test_parquet_int_ids_and_struct_metadata(tmp_path: Path, make_parquet) -> None:
    path = make_parquet(
        tmp_path / "t.parquet",
        {"id": pa.array([10, 20], pa.int32()), "text": ["a", "b"], "metadata": [{"k": 1}, None]},
    )
    docs = all_docs(scan(path))
    assert docs["id"].to_pylist() == ["10", "20"] and docs["id_type"].to_pylist() == ["int"] * 2
    assert docs["metadata"].to_pylist() == ['{"k": 1}', None]


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"text": "ok"}', '{"text": 5}'], r"docs\.jsonl:2: 'text' must be a string"),
        (['{"text": "ok"}', "", "{not json"], r"docs\.jsonl:3: not valid JSON"),
        (['{"id": 1, "text": "a"}', '{"id": 1, "text": "b"}'], r"docs\.jsonl:2: duplicate id 1"),
        (['{"id": [1], "text": "a"}'], r"docs\.jsonl:1: 'id' must be"),
        (['{"text": "a", "metadata": 3}'], r"docs\.jsonl:1: 'metadata' must be an object"),
    ],
)
def test_bad_jsonl_rows_name_file_and_line(tmp_path: Path, lines: list[str], match: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputValueError, match=match):
        scan(path)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"text": ["a", None, "c"]}, r"t\.parquet:row 2: 'text' is null"),
        ({"text": [1, 2]}, r"column 'text' is int64, expected string"),
        ({"body": ["a"]}, r"no text column 'text'"),
        ({"id": ["x", "x"], "text": ["a", "b"]}, r"t\.parquet:row 2: duplicate id 'x' .*:row 1\)"),
        ({"id": [1.5], "text": ["a"]}, r"column 'id' is double"),
        ({"text": ["a", "b"], "metadata": ["{}", "[1]"]}, r"row 2: metadata must be an object"),
    ],
)
def test_bad_parquet_rows_name_file_and_row(
    tmp_path: Path, make_parquet, columns: dict, match: str
) -> None:
    path = make_parquet(tmp_path / "t.parquet", columns)
    with pytest.raises(InputValueError, match=match):
        scan(path)


def test_null_found_in_a_later_row_group(tmp_path: Path, make_parquet) -> None:
    path = make_parquet(tmp_path / "t.parquet", {"text": ["a"] * 1500 + [None]})
    with pytest.raises(InputValueError, match=r"row 1501: 'text' is null"):
        scan(path)


def test_duplicate_id_across_files_names_both(tmp_path: Path, make_jsonl) -> None:
    make_jsonl(tmp_path / "d" / "a.jsonl", [{"id": "x", "text": "a"}])
    make_jsonl(tmp_path / "d" / "b.jsonl", [{"text": "b"}, {"id": "x", "text": "c"}])
    with pytest.raises(
        InputValueError, match=r"b\.jsonl:2: duplicate id 'x' \(first at .*a\.jsonl:1"
    ):
        scan(tmp_path / "d")


def test_missing_or_unknown_input(tmp_path: Path, make_parquet) -> None:
    with pytest.raises(InputValueError, match="not found"):
        scan(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputValueError, match="unknown input type"):
        scan(tmp_path / "x.csv")
    with pytest.raises(InputValueError, match=r"no \.jsonl"):
        scan(tmp_path)
    with pytest.raises(InputValueError, match="no id column 'doc_id'"):
        scan(make_parquet(tmp_path / "t.parquet", {"body": ["a"]}), PQ)
