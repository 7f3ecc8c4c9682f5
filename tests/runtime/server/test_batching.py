"""The micro-batcher: merging, ordering, bounded wait, budgets, keys, error isolation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
from umr.runtime.server.batching import (
    BatchStats,
    DirectRunner,
    MicroBatcher,
    QueueFullError,
    make_executor,
)
from umr.runtime.server.config import BatchConfig

from umr.errors import ServerError


class Recorder:
    """A run function: row i of a call is ``[item_i]``; "bad" items raise.

    The first call can be held on ``gate`` so later jobs pile up in the queue.
    """

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[tuple[object, list]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.hold_first = hold_first
        self.lock = threading.Lock()

    def __call__(self, key, items):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls.append((key, list(items)))
            first = len(self.calls) == 1
        if first and self.hold_first:
            self.entered.set()
            assert self.gate.wait(10)
        if "bad" in items:
            raise ValueError("bad item")
        return np.array([[float(x)] for x in items], dtype=np.float32)


def config(**kw) -> BatchConfig:  # type: ignore[no-untyped-def]
    base = {"max_wait_ms": 5.0, "workers": 1}
    return BatchConfig(**{**base, **kw})


@pytest.fixture
def batchers():  # type: ignore[no-untyped-def]
    made = []

    def make(run, cfg, cls=MicroBatcher, on_batch=None):  # type: ignore[no-untyped-def]
        b = cls(run, cfg, on_batch)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def rows(future) -> list[float]:  # type: ignore[no-untyped-def]
    return future.result(timeout=10)[:, 0].tolist()


def test_queued_jobs_share_a_call_and_get_their_own_rows(batchers) -> None:
    run = Recorder(hold_first=True)
    b = batchers(run, config())
    first = b.submit("k", [0])
    assert run.entered.wait(5)  # the only worker is busy: the rest queue up
    futures = [b.submit("k", [10 * i + 1, 10 * i + 2]) for i in range(1, 6)]
    run.gate.set()
    assert rows(first) == [0]
    for i, f in enumerate(futures, start=1):
        assert rows(f) == [10 * i + 1, 10 * i + 2]  # order kept within and across jobs
    assert len(run.calls) == 2 and run.calls[1][1] == [11, 12, 21, 22, 31, 32, 41, 42, 51, 52]


def test_concurrent_submitters_from_threads(batchers) -> None:
    run = Recorder()
    b = batchers(run, config(max_wait_ms=20, workers=2))
    results: dict[int, list[float]] = {}

    def client(i: int) -> None:
        for j in range(5):
            value = i * 100 + j
            results[value] = rows(b.submit("k", [value]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[v] == [v] for v in results) and len(results) == 40
    assert len(run.calls) < 40  # some requests shared a call


def test_a_lone_request_waits_at_most_max_wait(batchers) -> None:
    run = Recorder()
    b = batchers(run, config(max_wait_ms=30))
    start = time.perf_counter()
    assert rows(b.submit("k", [1])) == [1]
    elapsed = time.perf_counter() - start
    assert 0.025 <= elapsed < 0.5  # waited for company, but not much longer than 30 ms


def test_zero_wait_runs_at_once(batchers) -> None:
    b = batchers(Recorder(), config(max_wait_ms=0))
    start = time.perf_counter()
    rows(b.submit("k", [1]))
    assert time.perf_counter() - start < 0.2


def test_a_job_arriving_within_the_wait_joins_the_batch(batchers) -> None:
    run = Recorder()
    b = batchers(run, config(max_wait_ms=300))
    f1 = b.submit("k", [1])
    time.sleep(0.02)
    f2 = b.submit("k", [2])
    assert rows(f1) == [1] and rows(f2) == [2]
    assert run.calls == [("k", [1, 2])]


class Gated:
    """A run function that holds every call holding a gated item until it is let go."""

    def __init__(self, *gated: str) -> None:
        self.calls: list[list] = []
        self.entered = {g: threading.Event() for g in gated}
        self.release = {g: threading.Event() for g in gated}

    def __call__(self, key, items):  # type: ignore[no-untyped-def]
        self.calls.append(list(items))
        for item in items:
            if item in self.release:
                self.entered[item].set()
                assert self.release[item].wait(10)
        return np.zeros((len(items), 1), dtype=np.float32)


def test_a_free_runner_takes_only_its_share_of_the_work(batchers) -> None:
    run = Gated("a", "b")
    b = batchers(run, config(max_wait_ms=0, workers=2))
    held = [b.submit("k", ["a"])]
    assert run.entered["a"].wait(5)
    held.append(b.submit("k", ["b"]))
    assert run.entered["b"].wait(5)  # both runners busy: the next 8 jobs queue up
    futures = [b.submit("k", [i]) for i in range(1, 9)]
    run.release["a"].set()
    for f in futures:
        f.result(timeout=10)
    run.release["b"].set()
    # 9 items in the system on 2 runners: 5 go, then 2 of the 3 left beside "b", then 1
    assert run.calls[2:] == [[1, 2, 3, 4, 5], [6, 7], [8]]


@pytest.mark.parametrize(
    ("budget", "cost"), [({"max_items": 4}, {}), ({"max_tokens": 40}, {"tokens": 10})]
)
def test_budgets_bound_each_call(batchers, budget, cost) -> None:
    run = Recorder(hold_first=True)
    b = batchers(run, config(**budget))
    futures = [b.submit("k", [0], **cost)]
    assert run.entered.wait(5)
    futures += [b.submit("k", [i], **cost) for i in range(1, 11)]
    run.gate.set()
    assert [rows(f) for f in futures] == [[i] for i in range(11)]
    sizes = [len(items) for _, items in run.calls]
    assert sizes == [1, 4, 4, 2]


def test_an_oversized_job_still_runs_alone(batchers) -> None:
    run = Recorder()
    b = batchers(run, config(max_items=2))
    assert rows(b.submit("k", [1, 2, 3, 4, 5])) == [1, 2, 3, 4, 5]


def test_keys_never_share_a_call_and_keep_arrival_order(batchers) -> None:
    run = Recorder(hold_first=True)
    b = batchers(run, config())
    first = b.submit("a", [0])
    assert run.entered.wait(5)
    fa = [b.submit("a", [i]) for i in (1, 2)]
    fb = [b.submit("b", [i]) for i in (3, 4)]
    fa.append(b.submit("a", [5]))
    run.gate.set()
    assert [rows(f) for f in [first, *fa, *fb]] == [[0], [1], [2], [5], [3], [4]]
    assert run.calls[1:] == [("a", [1, 2, 5]), ("b", [3, 4])]


def test_errors_stay_with_the_request_that_caused_them(batchers) -> None:
    run = Recorder(hold_first=True)
    stats: list[BatchStats] = []
    b = batchers(run, config(), on_batch=stats.append)
    first = b.submit("k", [0])
    assert run.entered.wait(5)
    good1, bad, good2 = b.submit("k", [1]), b.submit("k", ["bad"]), b.submit("k", [2])
    run.gate.set()
    assert rows(first) == [0] and rows(good1) == [1] and rows(good2) == [2]
    with pytest.raises(ValueError, match="bad item"):
        bad.result(timeout=5)
    assert [s.failed for s in stats] == [False, True]
    assert stats[1].jobs == 3 and stats[1].items == 3


def test_wrong_row_count_is_an_error_not_shifted_rows(batchers) -> None:
    b = batchers(lambda key, items: np.zeros((len(items) + 1, 1)), config())
    with pytest.raises(RuntimeError, match="rows"):
        b.submit("k", [1]).result(timeout=5)


def test_queue_bound(batchers) -> None:
    run = Recorder(hold_first=True)
    b = batchers(run, config(max_queue=3))
    b.submit("k", [0])
    assert run.entered.wait(5)
    b.submit("k", [1, 2])
    with pytest.raises(QueueFullError):
        b.submit("k", [3, 4])
    assert b.queued_items == 2
    run.gate.set()


def test_cancelled_jobs_are_skipped(batchers) -> None:
    run = Recorder(hold_first=True)
    b = batchers(run, config())
    b.submit("k", [0])
    assert run.entered.wait(5)
    gone = b.submit("k", [1])
    kept = b.submit("k", [2])
    assert gone.cancel()
    run.gate.set()
    assert rows(kept) == [2]
    with pytest.raises(CancelledError):
        gone.result()
    assert run.calls[1] == ("k", [2])


def test_close_drains_queued_jobs_and_refuses_new_ones() -> None:
    run = Recorder(hold_first=True)
    b = MicroBatcher(run, config())
    running = b.submit("k", [0])
    assert run.entered.wait(5)
    queued = b.submit("k", [1])
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    run.gate.set()
    closer.join(5)
    assert not closer.is_alive()
    assert rows(running) == [0] and rows(queued) == [1]
    with pytest.raises(ServerError, match="shutting down"):
        b.submit("k", [2])


def test_direct_runner_makes_one_call_per_job(batchers) -> None:
    run = Recorder()
    b = batchers(run, config(enabled=False, workers=2), cls=DirectRunner)
    futures = [b.submit("k", [i]) for i in range(6)]
    assert [rows(f) for f in futures] == [[i] for i in range(6)]
    assert sorted(len(items) for _, items in run.calls) == [1] * 6


def test_make_executor_follows_the_switch() -> None:
    for enabled, cls in ((True, MicroBatcher), (False, DirectRunner)):
        ex = make_executor(Recorder(), config(enabled=enabled))
        assert isinstance(ex, cls)
        ex.close()


@pytest.mark.parametrize(
    "bad", [{"max_wait_ms": -1}, {"max_wait_ms": float("nan")}, {"workers": 0}, {"max_items": 0}]
)
def test_bad_batch_config(bad) -> None:
    with pytest.raises(ServerError):
        BatchConfig(**bad)
