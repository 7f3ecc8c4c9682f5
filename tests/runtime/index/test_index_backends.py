"""The backend registry and open_index's dispatch; Milvus expression and id encoding."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import umr.runtime.index
from umr.runtime.index import (
    BACKENDS,
    ExactIndex,
    Index,
    create_index,
    get_backend,
    list_backends,
    open_index,
)
from umr.runtime.index import milvus_schema as ms
from umr.runtime.index.backends import backend_for, is_milvus_location

from umr.errors import BackendError, DuplicateIdError, IndexCorruptError, InputValueError


def test_registry_lists_every_backend():
    assert list_backends() == ["exact", "hnswlib", "milvus"] == sorted(BACKENDS)
    assert get_backend("hnswlib") is Index and get_backend("exact") is ExactIndex
    assert BACKENDS["milvus"].extra == "milvus"


def test_unknown_backend_names_the_available_ones():
    with pytest.raises(BackendError, match="'faiss'; available: exact, hnswlib, milvus"):
        get_backend("faiss")
    with pytest.raises(BackendError, match="available"):
        open_index("anything", backend="faiss")


@pytest.mark.parametrize("missing", ["pymilvus", "milvus_lite"])
def test_missing_package_says_how_to_install(monkeypatch, missing):
    monkeypatch.delitem(sys.modules, "umr.runtime.index.milvus", raising=False)
    monkeypatch.delattr(umr.runtime.index, "milvus", raising=False)  # restored afterwards
    monkeypatch.setitem(sys.modules, missing, None)  # import -> ImportError
    with pytest.raises(BackendError, match=r"pip install 'umr\[milvus\]'"):
        get_backend("milvus").create(4, uri="x.db")


@pytest.mark.parametrize(
    ("location", "milvus"),
    [
        ("http://host:19530", True),
        ("https://x.zillizcloud.com", True),
        ("tcp://10.0.0.1:19530", True),
        ("data/vectors.db", True),
        ("data/index", False),
        ("data/db", False),
    ],
)
def test_milvus_locations(location, milvus):
    assert is_milvus_location(location) is milvus


def test_open_index_picks_the_local_kind(tmp_path):
    for name, cls in (("hnswlib", Index), ("exact", ExactIndex)):
        index = create_index(name, 4)
        index.add(np.eye(4, dtype=np.float32), [1, 2, 3, 4])
        index.save(tmp_path / name)
        assert backend_for(tmp_path / name) == name
        assert type(open_index(tmp_path / name, num_threads=1)) is cls
    with pytest.raises(IndexCorruptError):
        open_index(tmp_path / "hnswlib", backend="exact")
    with pytest.raises(IndexCorruptError, match="none"):
        open_index(tmp_path / "none")
    with pytest.raises(BackendError, match="collection: not an option of the hnswlib backend"):
        open_index(tmp_path / "hnswlib", collection="docs")


def test_milvus_literals_are_escaped():
    assert ms.literal(True) == "true" and ms.literal(3) == "3" and ms.literal(-0.5) == "-0.5"
    assert ms.literal('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    expr = ms.filter_expr({"lang": 'x" or true or "', "a.b": 1})
    assert expr == 'metadata["lang"] == "x\\" or true or \\"" and metadata["a"]["b"] == 1'


def test_milvus_ids_keep_their_type():
    assert ms.encode_id(7) == "i:7" and ms.encode_id("7") == "s:7"
    for item_id in (7, "7", -3, "", "a:b", "ünï"):
        assert ms.decode_id(ms.encode_id(item_id)) == item_id
    with pytest.raises(InputValueError, match="ids\\[2\\]"):
        ms.encode_id("x" * 5000, 2)
    with pytest.raises(InputValueError, match="UTF-8"):
        ms.encode_id("\ud800")
    with pytest.raises(BackendError):
        ms.decode_id("42")


def test_milvus_refuses_a_non_milvus_path(tmp_path):
    pytest.importorskip("pymilvus")
    with pytest.raises(BackendError, match="neither a Milvus URI"):
        get_backend("milvus").create(4, uri=tmp_path / "plain")


def test_milvus_open_errors(tmp_path):
    pytest.importorskip("milvus_lite")
    milvus = get_backend("milvus")
    db = tmp_path / "m.db"
    index = milvus.create(4, uri=db, collection="docs")
    index.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], [{"n": 1}] * 4)
    with pytest.raises(BackendError, match="already exists"):
        milvus.create(4, uri=db, collection="docs")
    with pytest.raises(BackendError, match=r"'other' does not exist.*docs"):
        open_index(db, collection="other")
    again = open_index(str(db), collection="docs", ef=9)
    assert (again.ef, len(again), again.get("b")) == (9, 4, {"n": 1})
    with pytest.raises(BackendError, match="not a readable Milvus pointer"):
        milvus.load(tmp_path)
    index.save(tmp_path / "ptr")
    assert open_index(tmp_path / "ptr", collection="docs").get("a") == {"n": 1}
    replaced = milvus.create(8, uri=db, collection="docs", overwrite=True)
    assert (replaced.dim, len(replaced)) == (8, 0)


def test_milvus_requests_in_small_chunks(tmp_path, monkeypatch):
    pytest.importorskip("milvus_lite")
    milvus = get_backend("milvus")
    for name, size in (("insert_rows", 7), ("lookup_chunk", 5), ("search_rows", 3)):
        monkeypatch.setattr(milvus, name, size)
    index = milvus.create(8, uri=tmp_path / "m.db")
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    index.add(x, list(range(40)))
    with pytest.raises(DuplicateIdError, match="ids\\[2\\]"):
        index.add(x[:3], [100, 101, 39])
    index.delete(list(range(0, 40, 2)))
    assert len(index) == 20 and index.ids() == list(range(1, 40, 2))
    assert [row[0].id for row in index.search(x[1:10:2], k=1)] == [1, 3, 5, 7, 9]
