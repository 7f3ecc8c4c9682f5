"""The vectors directory format: round trip, verification before reading, safe overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from umr.runtime.corpus_embed.vectors import (
    MANIFEST_NAME,
    VectorsError,
    read_vectors,
    read_vectors_info,
    to_table,
)
from umr.runtime.corpus_embed.writer import VectorWriter, prepare_out_dir, write_manifest

from umr.errors import InputValueError

IDS: list[int | str] = [1, "a", 3, "007", 5, 6, 7]
META = [None, {"x": 1}, None, {}, None, {"é": "ü"}, {"y": [1, 2]}]


def write_dir(root: Path, rows_per_file: int = 3, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(IDS), dim)).astype(np.float32)
    prepare_out_dir(root, force=False)
    writer = VectorWriter(root, dim, rows_per_file=rows_per_file)
    writer.write(to_table(IDS[:2], vecs[:2], META[:2]))
    writer.write(to_table(IDS[2:], vecs[2:], META[2:]))
    files = writer.close()
    write_manifest(
        root,
        dim=dim,
        count=writer.count,
        bundle="tiny",
        model_sha256="0" * 64,
        variant="fp32",
        files=files,
        input={"paths": ["x.jsonl"]},
    )
    return vecs


def test_round_trip_keeps_order_types_and_metadata(tmp_path: Path) -> None:
    vecs = write_dir(tmp_path / "v")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == [
        MANIFEST_NAME,
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    batches = list(read_vectors(tmp_path / "v", batch_rows=2))
    assert [i for b in batches for i in b.ids] == IDS  # "007" stays a string, ints stay ints
    assert [m for b in batches for m in b.metadata] == [m or None for m in META]
    np.testing.assert_array_equal(np.concatenate([b.vectors for b in batches]), vecs)
    assert all(b.vectors.dtype == np.float32 and b.vectors.shape[1] == 4 for b in batches)
    info = read_vectors_info(tmp_path / "v")
    assert (info["format"], info["dim"], info["count"], info["bundle"]) == (1, 4, 7, "tiny")
    schema = pq.read_schema(tmp_path / "v" / "part-00000.parquet")
    vtype = schema.field("vector").type
    assert (vtype.list_size, str(vtype.value_type)) == (4, "float")


def test_tampered_part_is_refused_before_any_row(tmp_path: Path) -> None:
    write_dir(tmp_path / "v")
    part = tmp_path / "v" / "part-00001.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(VectorsError, match=r"part-00001\.parquet: sha256 .* \(tampered"):
        read_vectors(tmp_path / "v")


def test_missing_manifest_means_incomplete(tmp_path: Path) -> None:
    write_dir(tmp_path / "v")
    (tmp_path / "v" / MANIFEST_NAME).unlink()
    with pytest.raises(VectorsError, match="incomplete"):
        read_vectors_info(tmp_path / "v")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("format", 2, "format 2"),
        ("count", 8, "manifest says 8"),
        ("dim", 5, "schema differs"),
        ("files", {"../etc.parquet": "0" * 64}, "bad files entry"),
        ("files", {"part-00009.parquet": "0" * 64}, "missing"),
        ("bundle", None, "'bundle' must be a str"),
    ],
)
def test_bad_manifest(tmp_path: Path, key: str, value: object, match: str) -> None:
    write_dir(tmp_path / "v")
    path = tmp_path / "v" / MANIFEST_NAME
    info = json.loads(path.read_text())
    info[key] = value
    path.write_text(json.dumps(info))
    with pytest.raises(VectorsError, match=match):
        read_vectors(tmp_path / "v")


def test_prepare_out_dir_refuses_without_force_and_foreign_files(tmp_path: Path) -> None:
    write_dir(tmp_path / "v")
    with pytest.raises(InputValueError, match="--force"):
        prepare_out_dir(tmp_path / "v", force=False)
    prepare_out_dir(tmp_path / "v", force=True)
    assert list((tmp_path / "v").iterdir()) == []
    (tmp_path / "v" / "notes.txt").write_text("mine")
    with pytest.raises(InputValueError, match=r"notes\.txt"):
        prepare_out_dir(tmp_path / "v", force=True)
    assert (tmp_path / "v" / "notes.txt").exists()


def test_bad_ids_refused_on_write() -> None:
    with pytest.raises(InputValueError, match="True"):
        to_table([True], np.zeros((1, 2), np.float32))
    with pytest.raises(InputValueError, match="shape"):
        to_table([1, 2], np.zeros((1, 2), np.float32))
