"""One behaviour suite for every index backend: hnswlib, exact, and Milvus (via milvus-lite).

Scores are compared across backends with a tolerance (float32 arithmetic differs); ids,
errors and metadata must agree exactly. Milvus runs in-process on one milvus-lite
database per module, with a fresh collection per test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from umr.runtime.index import ExactIndex, Hit, create_index, open_index

from umr.errors import DuplicateIdError, InputTypeError, InputValueError, UnknownIdError

BACKENDS = ["hnswlib", "exact", "milvus"]
TOL = 1e-4
_names = itertools.count()


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory) -> Iterator[str]:
    pytest.importorskip("pymilvus", reason="pip install 'umr[milvus]'")
    pytest.importorskip("milvus_lite", reason="pip install 'umr[milvus]'")
    yield str(tmp_path_factory.mktemp("milvus") / "conformance.db")


@pytest.fixture(params=BACKENDS)
def make(request) -> Iterator[Callable[..., Any]]:
    """Factory ``make(dim, space="cosine", **settings)`` for the parametrized backend."""
    made: list[Any] = []

    def factory(dim: int, space: str = "cosine", **settings: Any) -> Any:
        if request.param == "milvus":
            uri = request.getfixturevalue("milvus_db")
            settings.update(uri=uri, collection=f"c{next(_names)}")
        index = create_index(request.param, dim, space=space, **settings)
        made.append(index)
        return index

    yield factory
    for index in made:
        if hasattr(index, "drop"):
            index.drop()


def _ids(rows: list[list[Hit]]) -> list[list[object]]:
    return [[h.id for h in row] for row in rows]


def _data(n: int = 200, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


IDS = [i if i % 2 else f"doc-{i}" for i in range(200)]  # mixed int and str ids
META = [
    None if i % 5 == 0 else {"group": i % 3, "lang": "en" if i % 4 else "fr", "n": {"v": i}}
    for i in range(200)
]


def test_add_len_contains_get_ids(make):
    index = make(16)
    index.add(_data(), IDS, META)
    assert len(index) == 200 and index.dim == 16 and index.space == "cosine"
    assert 1 in index and "doc-2" in index
    assert "1" not in index and 2 not in index and 3.5 not in index
    assert index.get(7) == META[7] and index.get("doc-0") is None
    assert index.ids() == IDS
    assert index.properties.count == 200


@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_search_agrees_with_exact_search(make, space, tmp_path):
    x, q = _data(300, 16), _data(20, 16, seed=1) * 3.0  # queries not unit: scores differ
    index, ref = make(16, space), ExactIndex.create(16, space)
    for ix in (index, ref):
        ix.add(x, list(range(300)))
    want = ref.search(q, k=10)
    _assert_agrees(index.search(q, k=10), want)
    index.save(tmp_path / "ix")  # Milvus: flushed, so sealed segments answer now
    _assert_agrees(index.search(q, k=10), want)


def _assert_agrees(got: list[list[Hit]], want: list[list[Hit]]) -> None:
    pairs = zip(_ids(got), _ids(want), strict=True)
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in pairs]) >= 0.95
    for g, w in zip(got, want, strict=True):
        assert len(g) == 10 and all(a.score >= b.score - TOL for a, b in itertools.pairwise(g))
        assert math.isclose(g[0].score, w[0].score, rel_tol=TOL, abs_tol=TOL)


def test_own_vector_is_the_top_hit_with_metadata(make):
    x = _data()
    index = make(16)
    index.add(x, IDS, META)
    top = [row[0] for row in index.search(x[:30], k=1)]
    assert [h.id for h in top] == IDS[:30]
    assert [h.metadata for h in top] == META[:30]
    assert all(abs(h.score - 1.0) < TOL for h in top)


def test_empty_index_and_k_beyond_count(make):
    index = make(4, "ip")
    assert index.search(np.ones((2, 4), np.float32), k=3) == [[], []]
    index.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"])
    rows = index.search(np.eye(4, dtype=np.float32)[:1], k=50)
    assert len(rows[0]) == 4 and rows[0][0].id == "a"


def test_delete_then_readd(make):
    x = _data()
    index = make(16)
    index.add(x, IDS, META)
    index.delete([1, "doc-2", 3])
    assert len(index) == 197 and 1 not in index and "doc-2" not in index
    found = {h.id for row in index.search(x[:10], k=10) for h in row}
    assert not found & {1, "doc-2", 3}
    with pytest.raises(UnknownIdError):
        index.get(1)
    index.add(x[1:2], [1], [{"again": True}])
    top = index.search(x[1], k=1)[0][0]
    assert (top.id, top.metadata) == (1, {"again": True})
    assert index.ids()[-1] == 1


def test_delete_refuses_unknown_or_repeated_ids_and_changes_nothing(make):
    index = make(16)
    index.add(_data(), IDS)
    with pytest.raises(UnknownIdError, match="ids\\[1\\]"):
        index.delete([1, "nope"])
    with pytest.raises(UnknownIdError):
        index.delete(["1"])  # str "1" is not int 1
    with pytest.raises(DuplicateIdError):
        index.delete([1, 1])
    assert len(index) == 200 and 1 in index


def test_filters(make):
    x = _data()
    index = make(16)
    index.add(x, IDS, META)
    flt = {"group": 1, "lang": "fr"}
    want = [i for i, m in zip(IDS, META, strict=True) if m and m.items() >= flt.items()]
    rows = index.search(x[:5], k=200, filter=flt)
    for row in rows:
        assert sorted(map(str, (h.id for h in row))) == sorted(map(str, want))
        assert all(h.metadata["group"] == 1 and h.metadata["lang"] == "fr" for h in row)
    # top-k of the filtered set, best first, fewer than k when few match
    assert len(index.search(x[0], k=3, filter={"lang": "fr"})[0]) == 3
    assert _ids(index.search(x[:2], k=5, filter={"n.v": 7})) == [[7], [7]]  # nested key
    assert index.search(x[:2], k=5, filter={"group": 1.0})[0]  # 1 == 1.0
    assert index.search(x[:2], k=5, filter={"lang": "de"}) == [[], []]
    assert index.search(x[:2], k=5, filter={"absent": 1}) == [[], []]
    assert index.search(x[:2], k=5, filter={"group": "1"}) == [[], []]  # str never matches int
    assert len(index.search(x[0], k=10, filter={})[0]) == 10  # empty filter: no filter


def test_filter_values_needing_quotes(make):
    tricky = ['say "hi"', "back\\slash", "tab\there", "new\nline", "it's", "ünï ✓", "a]b)c"]
    x = _data(len(tricky))
    index = make(16)
    index.add(x, list(range(len(tricky))), [{"s": s} for s in tricky])
    for i, s in enumerate(tricky):
        assert _ids(index.search(x[0], k=5, filter={"s": s})) == [[i]], s


def test_filter_after_delete_and_on_other_types(make):
    x = _data(50)
    index = make(16)
    index.add(x, list(range(50)), [{"even": i % 2 == 0, "f": i / 2, "neg": -i} for i in range(50)])
    index.delete([0, 2])
    got = {h.id for h in index.search(x[0], k=50, filter={"even": True})[0]}
    assert got == set(range(4, 50, 2))
    assert _ids(index.search(x[0], k=5, filter={"f": 2.5})) == [[5]]
    assert _ids(index.search(x[0], k=5, filter={"neg": -7})) == [[7]]


@pytest.mark.parametrize(
    ("flt", "error", "match"),
    [
        (["lang"], InputTypeError, "filter: expected a mapping"),
        ({"a-b": 1}, InputValueError, "filter key 'a-b'"),
        ({'x"] or true or ["': 1}, InputValueError, "identifier"),
        ({"": 1}, InputValueError, "filter key ''"),
        ({1: 1}, InputTypeError, "filter key 1"),
        ({"a": [1]}, InputTypeError, "filter\\['a'\\]"),
        ({"a": None}, InputTypeError, "filter\\['a'\\]"),
        ({"a": float("nan")}, InputValueError, "finite"),
        ({"a": 2**70}, InputValueError, "int64"),
    ],
)
def test_bad_filters_raise_typed_errors(make, flt, error, match):
    index = make(4)
    index.add(np.eye(4, dtype=np.float32), [1, 2, 3, 4], [{"a": 1}] * 4)
    with pytest.raises(error, match=match):
        index.search(np.ones(4, np.float32), k=2, filter=flt)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ix, x: ix.add(x[:, :3], [1, 2]), InputValueError),  # wrong dim
        (lambda ix, x: ix.add(np.where(x > 0, np.nan, x), [1, 2]), InputValueError),
        (lambda ix, x: ix.add(x.astype(np.int64), [1, 2]), InputTypeError),
        (lambda ix, x: ix.add(x, [1]), InputValueError),  # id count
        (lambda ix, x: ix.add(x, [5, 5]), DuplicateIdError),  # twice in the call
        (lambda ix, x: ix.add(x, [6, "a"]), DuplicateIdError),  # already in the index
        (lambda ix, x: ix.add(x, [True, 7]), InputTypeError),
        (lambda ix, x: ix.add(x, [1.5, 7]), InputTypeError),
        (lambda ix, x: ix.add(x, [8, 9], [{"a": 1}, "x"]), InputTypeError),
        (lambda ix, x: ix.add(x, [8, 9], [{"a": {1, 2}}, None]), InputValueError),
        (lambda ix, x: ix.add(np.zeros((2, 4), np.float32), [8, 9]), InputValueError),
        (lambda ix, x: ix.search(x[:, :3]), InputValueError),
        (lambda ix, x: ix.search(x, k=0), InputValueError),
        (lambda ix, x: ix.search(x, k="3"), InputTypeError),
        (lambda ix, x: ix.search(x, ef=0), InputValueError),
        (lambda ix, x: ix.get("missing"), UnknownIdError),
        (lambda ix, x: ix.get(2.0), InputTypeError),
    ],
)
def test_bad_input_raises_the_same_errors_and_changes_nothing(make, call, error):
    index = make(4)
    index.add(np.eye(4, dtype=np.float32)[:2], [6, "a"], [{"k": 1}, None])
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    with pytest.raises(error):
        call(index, x)
    assert len(index) == 2 and index.ids() == [6, "a"] and index.get(6) == {"k": 1}


def test_per_call_ef_and_save_then_open_index(make, tmp_path):
    x = _data()
    index = make(16, ef=40)
    index.add(x, IDS, META)
    before = index.search(x[:10], k=5)
    assert _ids(index.search(x[:10], k=5, ef=200)) == _ids(before)
    index.save(tmp_path / "ix")
    again = open_index(tmp_path / "ix")
    assert type(again) is type(index)
    assert (again.dim, again.space, again.ef, len(again)) == (16, "cosine", 40, 200)
    assert _ids(again.search(x[:10], k=5)) == _ids(before)
    assert again.get(7) == META[7]
