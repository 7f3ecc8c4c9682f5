"""The index API: round trips, growth, deletes, ids/metadata and agreement with exact search."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from umr.runtime.index import ExactIndex, Hit, Index, IndexInfo, load

from umr.errors import DuplicateIdError, IndexCorruptError, UnknownIdError

KINDS = [Index, ExactIndex]
SPACES = ["cosine", "ip", "l2"]


def _ids(results: list[list[Hit]]) -> list[list[object]]:
    return [[h.id for h in row] for row in results]


@pytest.mark.parametrize("cls", KINDS)
def test_round_trip_keeps_ids_metadata_deletes_and_ef(cls, clustered, tmp_path):
    x = clustered(500, 24)
    ids = [f"doc-{i}" if i % 2 else i for i in range(500)]  # mixed int and str ids
    meta = [{"n": i, "tags": ["a", str(i)]} if i % 3 else None for i in range(500)]
    index = cls.create(24, "cosine", ef=77, capacity=64)
    index.add(x, ids, meta)
    index.delete([0, "doc-1", 30])
    before = index.search(x[:40], k=7)
    index.save(tmp_path / "ix")

    loaded = cls.load(tmp_path / "ix")
    assert type(loaded) is cls
    assert len(loaded) == 497
    assert loaded.ef == 77 and loaded.dim == 24 and loaded.space == "cosine"
    assert loaded.get("doc-5") == {"n": 5, "tags": ["a", "5"]}
    assert loaded.get(6) is None
    assert 0 not in loaded and "doc-1" not in loaded and "doc-3" in loaded
    assert loaded.search(x[:40], k=7) == before
    assert sorted(map(str, loaded.ids())) == sorted(map(str, index.ids()))
    with pytest.raises(UnknownIdError, match="'doc-1'"):
        loaded.get("doc-1")


@pytest.mark.parametrize("cls", KINDS)
def test_deleted_ids_never_returned_and_can_be_added_again(cls, clustered):
    x = clustered(300, 16)
    index = cls.create(16, "l2")
    index.add(x, list(range(300)))
    index.delete(list(range(0, 300, 2)))
    found = {h.id for row in index.search(x, k=20) for h in row}
    assert found and all(i % 2 for i in found)
    index.add(x[:1], [0], [{"again": True}])
    top = index.search(x[0], k=1)[0][0]
    assert (top.id, top.metadata) == (0, {"again": True})
    assert len(index) == 151


@pytest.mark.parametrize("cls", KINDS)
def test_grows_past_capacity(cls, clustered):
    x = clustered(1000, 8)
    index = cls.create(8, "cosine", capacity=10)
    for start in range(0, 1000, 100):
        index.add(x[start : start + 100], list(range(start, start + 100)))
    assert len(index) == 1000
    assert index.properties.capacity >= 1000
    assert [row[0].id for row in index.search(x[::100], k=1)] == list(range(0, 1000, 100))


@pytest.mark.parametrize("cls", KINDS)
def test_empty_index_and_k_larger_than_count(cls, tmp_path):
    index = cls.create(4, "ip")
    assert index.search(np.ones((3, 4), np.float32), k=5) == [[], [], []]
    index.save(tmp_path / "empty")
    assert len(load(tmp_path / "empty")) == 0
    index.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"])
    res = index.search(np.eye(4, dtype=np.float32)[0], k=50)
    assert len(res) == 1 and len(res[0]) == 4 and res[0][0].id == "a"


@pytest.mark.parametrize("space", SPACES)
def test_index_agrees_with_exact_on_small_sets(space, clustered):
    x = clustered(400, 32, seed=1) * (np.arange(400)[:, None] % 5 + 1)  # varied norms for ip/l2
    q = clustered(30, 32, seed=2)
    approx, exact = Index.create(32, space, ef=400), ExactIndex.create(32, space)
    for index in (approx, exact):
        index.add(x, list(range(400)))
    a, e = approx.search(q, k=10), exact.search(q, k=10)
    assert _ids(a) == _ids(e)
    got = np.array([[h.score for h in row] for row in a])
    want = np.array([[h.score for h in row] for row in e])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert all(row[i].score >= row[i + 1].score for row in a for i in range(9))


@pytest.mark.parametrize("space", SPACES)
def test_scores_mean_what_the_docs_say(space):
    v = np.array([[3.0, 4.0]], np.float32)
    q = np.array([1.0, 0.0], np.float32)
    want = {"cosine": 0.6, "ip": 3.0, "l2": -(4.0 + 16.0)}[space]
    for cls in KINDS:
        index = cls.create(2, space)
        index.add(v, ["v"])
        assert index.search(q)[0][0].score == pytest.approx(want, rel=1e-5)


def test_recall_on_clustered_vectors_against_exact(clustered):
    x = clustered(4000, 64, clusters=40, seed=3)
    q = clustered(4200, 64, clusters=40, seed=3)[4000:]
    approx, exact = Index.create(64, "cosine"), ExactIndex.create(64, "cosine")
    for index in (approx, exact):
        index.add(x, list(range(4000)))
    truth, found = _ids(exact.search(q, k=10)), _ids(approx.search(q, k=10))
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95


def test_per_call_ef_does_not_change_default(clustered):
    x = clustered(500, 16)
    index = Index.create(16, ef=20)
    index.add(x, list(range(500)))
    wide = index.search(x[:5], k=10, ef=300)
    assert index.ef == 20 and all(len(r) == 10 for r in wide)
    index.ef = 50
    assert index.properties == IndexInfo(
        kind="hnsw", dim=16, space="cosine", M=16, ef_construction=200, ef=50,
        count=500, deleted=0, capacity=1024,
    )  # fmt: skip


def test_duplicate_ids_refused_and_nothing_added(clustered):
    index = Index.create(8)
    index.add(clustered(3, 8), [1, 2, "x"])
    with pytest.raises(DuplicateIdError, match="'x'"):
        index.add(clustered(2, 8), ["y", "x"])
    with pytest.raises(DuplicateIdError, match=r"ids\[1\]: id 'z' appears twice"):
        index.add(clustered(2, 8), ["z", "z"])
    assert len(index) == 3 and "y" not in index and "z" not in index


def test_delete_unknown_id_is_atomic(clustered):
    index = ExactIndex.create(8)
    index.add(clustered(3, 8), [1, 2, 3])
    with pytest.raises(UnknownIdError, match=r"ids\[1\].*'nope'"):
        index.delete([1, "nope"])
    assert len(index) == 3 and 1 in index


def test_load_dispatches_and_refuses_wrong_class(clustered, tmp_path):
    index = ExactIndex.create(8)
    index.add(clustered(5, 8), list(range(5)))
    index.save(tmp_path / "e")
    assert isinstance(load(tmp_path / "e"), ExactIndex)
    with pytest.raises(IndexCorruptError, match="'exact' index"):
        Index.load(tmp_path / "e")


def test_save_replaces_generation_and_leaves_only_current_files(clustered, tmp_path):
    index = Index.create(8)
    index.add(clustered(5, 8), list(range(5)))
    index.save(tmp_path)
    index.add(clustered(5, 8, seed=9), list(range(5, 10)))
    index.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".lock", "hnsw-2.bin", "items-2.json", "manifest.json"]
    assert len(Index.load(tmp_path)) == 10


def test_runtime_index_does_not_import_torch():
    import subprocess

    code = (
        "import sys, umr.runtime.index\n"
        "bad = [m for m in ('torch', 'transformers', 'optimum', 'onnx') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
