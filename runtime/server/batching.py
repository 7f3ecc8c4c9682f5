"""Dynamic micro-batching: concurrent requests share one model call.

A collector thread gathers jobs (one per request part) into a batch until the first
job has waited ``max_wait_ms`` or the next job would break a budget (inputs, tokens,
pixels), then hands the batch to one of ``workers`` runner threads. It takes a free
runner *before* it starts gathering, so while every runner is busy the queue fills and
the next batch leaves at once with everything waiting: under load, batches grow to
the budgets on their own; idle, a request waits at most ``max_wait_ms``. A batch
also takes no more than an equal share (per runner) of all the inputs queued and
running, so one free runner cannot take every queued job while another idles.

Only jobs with the same key (modality + instruction) share a call, because the
embedder takes one instruction per call. A failing batch of several jobs is retried
job by job, so an error reaches only the request that caused it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from umr.errors import ServerError

from .config import BatchConfig

log = logging.getLogger("umr.server")

#: ``run(key, items) -> [len(items), dim]`` array, rows in item order.
RunFn = Callable[[Hashable, list[Any]], np.ndarray]


class QueueFullError(ServerError):
    """More inputs are waiting than ``max_queue`` allows; the client should retry later."""


@dataclass(frozen=True)
class BatchStats:
    """What one model call did (for metrics)."""

    key: Hashable
    jobs: int
    items: int
    tokens: int
    pixels: int
    wait_s: float  # how long the oldest job queued before the call started
    run_s: float
    failed: bool


@dataclass(eq=False)
class _Job:
    key: Hashable
    items: list[Any]
    tokens: int
    pixels: int
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()


class _Runner:
    """Shared by both executors: the queue bound, stats and the per-job fallback."""

    def __init__(self, run: RunFn, config: BatchConfig, on_batch: Callable | None) -> None:
        self._run = run
        self.config = config
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._queued = 0
        self._closed = False

    @property
    def queued_items(self) -> int:
        """Inputs submitted and not yet started."""
        return self._queued

    def _admit(self, job: _Job, enqueue: Callable[[_Job], object]) -> None:
        """Count ``job`` in and hand it to ``enqueue``, atomically with ``close``: a job
        admitted before close is queued before the stop sentinel, none after it."""
        n = len(job.items)
        with self._lock:
            if self._closed:
                raise ServerError("the server is shutting down")
            if self._queued + n > self.config.max_queue and self._queued > 0:
                raise QueueFullError(
                    f"{self._queued} inputs are queued (limit {self.config.max_queue}); retry later"
                )
            self._queued += n
            enqueue(job)

    def _started(self, jobs: Sequence[_Job]) -> list[_Job]:
        """Mark jobs as started; drop the ones whose caller gave up (cancelled)."""
        with self._lock:
            self._queued -= sum(len(j.items) for j in jobs)
        return [j for j in jobs if j.future.set_running_or_notify_cancel()]

    def _execute(self, jobs: list[_Job]) -> None:
        live = self._started(jobs)
        if not live:
            return
        start = time.perf_counter()
        items = [it for job in live for it in job.items]
        failed = False
        try:
            rows = self._call(live[0].key, items)
        except Exception as exc:
            failed = True
            if len(live) == 1:
                live[0].future.set_exception(exc)
            else:  # find the culprit: each job alone, so errors stay with their request
                for job in live:
                    self._execute_alone(job)
        else:
            offset = 0
            for job in live:
                job.future.set_result(rows[offset : offset + len(job.items)])
                offset += len(job.items)
        self._report(live, items, start, failed)

    def _execute_alone(self, job: _Job) -> None:
        try:
            job.future.set_result(self._call(job.key, job.items))
        except Exception as exc:
            job.future.set_exception(exc)

    def _call(self, key: Hashable, items: list[Any]) -> np.ndarray:
        rows = self._run(key, items)
        if len(rows) != len(items):  # a broken embedder must not hand out shifted rows
            raise RuntimeError(f"embedder returned {len(rows)} rows for {len(items)} inputs")
        return rows

    def _report(self, jobs: list[_Job], items: list[Any], start: float, failed: bool) -> None:
        if self._on_batch is None:
            return
        stats = BatchStats(
            key=jobs[0].key,
            jobs=len(jobs),
            items=len(items),
            tokens=sum(j.tokens for j in jobs),
            pixels=sum(j.pixels for j in jobs),
            wait_s=start - min(j.enqueued for j in jobs),
            run_s=time.perf_counter() - start,
            failed=failed,
        )
        try:
            self._on_batch(stats)
        except Exception:  # metrics must never fail a request
            log.exception("batch stats callback failed")


class MicroBatcher(_Runner):
    """Collects concurrent jobs into batches; see the module docstring.

    ``submit`` is thread-safe and returns a ``concurrent.futures.Future`` resolving to
    the job's rows. ``close`` refuses new jobs, drains the queued ones, stops the threads.
    """

    def __init__(
        self, run: RunFn, config: BatchConfig, on_batch: Callable[[BatchStats], None] | None = None
    ) -> None:
        super().__init__(run, config, on_batch)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[_Job] = deque()  # taken off the queue, left for a later batch
        self._slots = threading.Semaphore(config.workers)
        self._running_items = 0  # in batches handed to the runners and not yet done
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="umr-batch")
        self._collector = threading.Thread(target=self._collect, name="umr-batcher", daemon=True)
        self._collector.start()

    def submit(self, key: Hashable, items: list[Any], tokens: int = 0, pixels: int = 0) -> Future:
        """Queue ``items`` (one request's inputs of one kind) for the next batch of ``key``."""
        job = _Job(key, list(items), tokens, pixels)
        self._admit(job, self._queue.put)
        return job.future

    def close(self) -> None:
        """Refuse new jobs (``ServerError``), finish every queued and running one, stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._collector.join()
        self._pool.shutdown(wait=True)

    # -- collector thread -------------------------------------------------------------
    def _collect(self) -> None:
        while True:
            self._slots.acquire()
            first = self._pending.popleft() if self._pending else self._queue.get()
            if first is _STOP:
                break
            batch = self._gather(first)
            items = sum(len(job.items) for job in batch)
            with self._lock:
                self._running_items += items
            self._pool.submit(self._run_and_release, batch, items)
        self._fail_leftovers()

    def _fair_share(self) -> int:
        """Items one batch may hold: an equal share of all the runners' work.

        Without it one free runner takes every queued job while the others idle:
        closed-loop clients, whose requests all come back when a batch ends, then
        ride one runner at a time in one big batch after another (16 clients on 2
        runners with no HTTP in between, ``umr bench serve``'s batcher line: 244-273
        texts/s in batches of 16, against 445-509 in batches of 7.3-7.5 with the
        share). With one runner the share is everything queued: the rule never holds
        a job back there.
        """
        with self._lock:
            total = self._running_items + self._queued  # queued counts this batch too
        return max(1, -(-total // self.config.workers))

    def _gather(self, first: _Job) -> list[_Job]:
        """``first`` plus the jobs of its key that fit the budgets and the fair share
        before the deadline."""
        cfg = self.config
        deadline = first.enqueued + cfg.max_wait_ms / 1e3
        batch = [first]
        used = [len(first.items), first.tokens, first.pixels]
        kept: deque[_Job] = deque()
        for job in self._candidates(first.key, deadline, kept):
            caps = (min(cfg.max_items, self._fair_share()), cfg.max_tokens, cfg.max_pixels)
            cost = (len(job.items), job.tokens, job.pixels)
            if any(u + c > cap for u, c, cap in zip(used, cost, caps, strict=True)):
                kept.append(job)
                break
            batch.append(job)
            used = [u + c for u, c in zip(used, cost, strict=True)]
        self._pending.extendleft(reversed(kept))  # keep arrival order for the next batch
        return batch

    def _candidates(self, key: Hashable, deadline: float, kept: deque[_Job]):  # type: ignore[no-untyped-def]
        """Jobs of ``key``: first those set aside earlier, then new arrivals until the
        deadline. Jobs of other keys go to ``kept``; a stop sentinel ends the batch."""
        while self._pending:
            job = self._pending.popleft()
            if job.key == key:
                yield job
            else:
                kept.append(job)
        while True:
            timeout = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return
            if job is _STOP:
                self._queue.put(_STOP)  # seen again by the main loop after this batch
                return
            if job.key == key:
                yield job
            else:
                kept.append(job)

    def _run_and_release(self, batch: list[_Job], items: int) -> None:
        try:
            self._execute(batch)
        finally:
            with self._lock:
                self._running_items -= items
            self._slots.release()

    def _fail_leftovers(self) -> None:
        leftovers = list(self._pending)
        self._pending.clear()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                leftovers.append(job)
        for job in self._started(leftovers):
            job.future.set_exception(ServerError("the server is shutting down"))


class DirectRunner(_Runner):
    """No batching: every job is its own model call on one of ``workers`` threads.

    Same interface as :class:`MicroBatcher`, for ``--no-batching`` and the benchmark.
    """

    def __init__(
        self, run: RunFn, config: BatchConfig, on_batch: Callable[[BatchStats], None] | None = None
    ) -> None:
        super().__init__(run, config, on_batch)
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="umr-direct")

    def submit(self, key: Hashable, items: list[Any], tokens: int = 0, pixels: int = 0) -> Future:
        """Run ``items`` as one call of their own as soon as a worker is free."""
        job = _Job(key, list(items), tokens, pixels)
        self._admit(job, lambda j: self._pool.submit(self._execute, [j]))
        return job.future

    def close(self) -> None:
        """Finish running and queued jobs, then stop the threads."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)


def make_executor(
    run: RunFn, config: BatchConfig, on_batch: Callable[[BatchStats], None] | None = None
) -> MicroBatcher | DirectRunner:
    """A :class:`MicroBatcher` when batching is enabled, else a :class:`DirectRunner`."""
    cls = MicroBatcher if config.enabled else DirectRunner
    return cls(run, config, on_batch)
