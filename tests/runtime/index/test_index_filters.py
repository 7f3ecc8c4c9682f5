"""Metadata filters on the local indexes: semantics, both hnswlib paths, and persistence."""

from __future__ import annotations

import numpy as np
import pytest
from umr.runtime.index import ExactIndex, Index, hnsw, load
from umr.runtime.index.filters import check_filter, matches

KINDS = [Index, ExactIndex]


def _meta(i: int) -> dict | None:
    if i % 7 == 0:
        return None
    return {"g": i % 4, "flag": i % 2 == 0, "lang": ["en", "fr", "de"][i % 3], "tags": [1]}


def _reference(x, q, meta, flt, k):
    """Exact filtered top-k by brute force over the rows that match."""
    keep = [i for i, m in enumerate(meta) if matches(m, flt)]
    ref = ExactIndex.create(x.shape[1])
    ref.add(x[keep], keep)
    return [[h.id for h in row] for row in ref.search(q, k=k)]


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("brute_max", [0, 10_000])  # hnswlib's filter callback, or scoring
def test_filtered_search_matches_filtered_brute_force(cls, brute_max, clustered, monkeypatch):
    monkeypatch.setattr(hnsw, "BRUTE_FORCE_MAX", brute_max)
    x, q = clustered(3000, 24), clustered(30, 24, seed=1)
    meta = [_meta(i) for i in range(3000)]
    index = cls.create(24)
    index.add(x, list(range(3000)), meta)
    for flt in ({"g": 1}, {"g": 2, "lang": "fr"}, {"flag": True, "lang": "de"}):
        got = [[h.id for h in row] for row in index.search(q, k=10, filter=flt)]
        want = _reference(x, q, meta, flt, 10)
        recall = np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)])
        assert recall >= 0.97, (flt, recall)
        assert all(matches(index.get(i), flt) for row in got for i in row)


def test_hnsw_filter_with_too_few_reachable_falls_back_to_exact(clustered, monkeypatch):
    monkeypatch.setattr(hnsw, "BRUTE_FORCE_MAX", 0)
    x = clustered(500, 16)
    index = Index.create(16)
    index.add(x, list(range(500)), [{"g": int(i == 17)} for i in range(500)])
    assert [h.id for h in index.search(x[0], k=5, filter={"g": 1})[0]] == [17]


@pytest.mark.parametrize("cls", KINDS)
def test_types_are_strict_bool_is_not_int(cls):
    index = cls.create(4)
    index.add(np.eye(4, dtype=np.float32), [0, 1, 2, 3], [{"v": 1}, {"v": True}, {"v": "1"}, None])
    ids = lambda v: [h.id for h in index.search(np.ones(4, np.float32), k=4, filter={"v": v})[0]]  # noqa: E731
    assert ids(1) == [0] and ids(1.0) == [0] and ids(True) == [1] and ids("1") == [2]
    assert ids(np.int64(1)) == [0] and ids(np.bool_(True)) == [1]


@pytest.mark.parametrize("cls", KINDS)
def test_filters_survive_add_delete_and_reload(cls, tmp_path):
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    index = cls.create(8)
    index.add(x[:20], list(range(20)), [{"g": i % 2} for i in range(20)])
    q = x[0]
    assert len(index.search(q, k=40, filter={"g": 0})[0]) == 10  # builds the "g" lists
    index.add(x[20:], list(range(20, 40)), [{"g": i % 2} for i in range(20, 40)])
    index.delete([0, 2, 4])
    got = {h.id for h in index.search(q, k=40, filter={"g": 0})[0]}
    assert got == set(range(6, 40, 2))
    index.save(tmp_path / "ix")
    again = load(tmp_path / "ix")
    assert {h.id for h in again.search(q, k=40, filter={"g": 0})[0]} == got
    again.add(x[:1], [0], [{"g": 0}])  # a deleted id added again matches again
    assert 0 in {h.id for h in again.search(q, k=40, filter={"g": 0})[0]}


def test_check_filter_normalizes():
    assert check_filter(None) is None and check_filter({}) is None
    out = check_filter({"a": np.int32(3), "b.c": np.float32(0.5), "d": np.bool_(False)})
    assert out == {"a": 3, "b.c": 0.5, "d": False}
    assert [type(v) for v in out.values()] == [int, float, bool]


@pytest.mark.parametrize("cls", KINDS)
def test_filtered_searches_during_adds_see_only_matches(cls, clustered):
    import threading

    x = clustered(4000, 16)
    index = cls.create(16)
    index.add(x[:500], list(range(500)), [{"g": i % 5} for i in range(500)])
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for i in range(200):
                key = ("g", "h")[i % 2]  # "h" lists are first built while adds run
                for row in index.search(x[i : i + 4], k=10, filter={key: 3}):
                    assert all(h.id % 5 == 3 for h in row)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(500, 4000, 250):
        ids = list(range(start, start + 250))
        index.add(x[start : start + 250], ids, [{"g": i % 5, "h": i % 5} for i in ids])
    for t in threads:
        t.join()
    assert not errors, errors[0]
    got = {h.id for h in index.search(x[0], k=4000, filter={"h": 3})[0]}
    assert got == {i for i in range(500, 4000) if i % 5 == 3}
