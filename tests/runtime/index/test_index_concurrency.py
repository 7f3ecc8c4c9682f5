"""Searches running while another thread adds and deletes; the readers-writer lock itself."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from umr.runtime.index import ExactIndex, Index
from umr.runtime.index.rwlock import RWLock


class SmallChunks(Index):
    add_chunk = 64  # many lock hand-overs inside one add


@pytest.mark.parametrize("cls", [SmallChunks, ExactIndex])
def test_search_during_adds_and_deletes(cls, clustered):
    x = clustered(3000, 16, seed=5)
    index = cls.create(16, "cosine", M=8, ef_construction=50, capacity=256)
    index.add(x[:500], list(range(500)))
    errors: list[BaseException] = []
    done = threading.Event()
    searched = [0]

    def reader() -> None:
        try:
            while not done.is_set():
                for row in index.search(x[:8], k=5):
                    ids = [h.id for h in row]
                    assert len(row) == 5 and len(set(ids)) == 5
                    # ids < 500 divisible by 7 were deleted before any reader started
                    assert all(0 <= i < 3000 and (i >= 500 or i % 7) for i in ids)
                    assert all(a.score >= b.score - 1e-6 for a, b in itertools.pairwise(row))
                searched[0] += 1
        except BaseException as exc:
            errors.append(exc)

    index.delete([i for i in range(500) if i % 7 == 0])
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for start in range(500, 3000, 500):
        ids = list(range(start, start + 500))
        index.add(x[start : start + 500], ids)
        index.delete([i for i in ids if i % 7 == 0])
    done.set()
    for t in readers:
        t.join(timeout=30)
    assert not errors, errors[0]
    assert searched[0] > 0
    assert len(index) == 3000 - len(range(0, 3000, 7))
    assert index.properties.capacity >= 3000


def test_rwlock_shares_reads_and_prefers_a_waiting_writer():
    lock = RWLock()
    order: list[str] = []
    lock.acquire_read()
    lock.acquire_read()  # two readers at once
    writer_in = threading.Event()

    def writer() -> None:
        with lock.write():
            order.append("writer")
            writer_in.set()

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.05)  # the writer is now waiting for the two readers
    r = threading.Thread(target=late_reader)
    r.start()
    time.sleep(0.05)
    assert order == []  # the late reader queued behind the waiting writer
    lock.release_read()
    assert not writer_in.wait(0.05)  # one reader still holds it
    lock.release_read()
    w.join(5)
    r.join(5)
    assert order == ["writer", "late reader"]


class _Flaky:
    """An hnswlib stand-in that refuses batched queries, like a graph cut by deletions."""

    def __init__(self, real, answerable: int) -> None:
        self.real, self.answerable = real, answerable

    def knn_query(self, q, k=1, num_threads=-1):
        if len(q) > 1 or k > self.answerable:
            raise RuntimeError("Cannot return the results in a contiguous 2D array")
        return self.real.knn_query(q, k=k)


def test_contiguous_array_error_is_retried_row_by_row(clustered):
    x = clustered(200, 8)
    index = Index.create(8)
    index.add(x, list(range(200)))
    want = index.search(x[:3], k=3)
    index._hnsw = _Flaky(index._hnsw, answerable=3)
    got = index.search(x[:3], k=10)
    assert [len(r) for r in got] == [3, 3, 3]
    assert [[h.id for h in r] for r in got] == [[h.id for h in r] for r in want]


def test_heavy_deletion_never_raises(clustered):
    x = clustered(400, 8, seed=7)
    index = Index.create(8, M=2, ef=1)
    index.add(x, list(range(400)))
    index.delete(list(range(395)))
    res = index.search(x, k=10)
    assert all(1 <= len(r) <= 5 and {h.id for h in r} <= set(range(395, 400)) for r in res)
