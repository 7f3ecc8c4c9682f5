"""Recall@k per M-BEIR task over a split: a hit if any right candidate is in the top k.

For each task the candidate pool is every distinct positive of that task in the split
(the emoji of the test identities, their names, ...). A query's right answers are the
positives of every record sharing its task, text, image and instruction (a name's
image exists in two styles: both count).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from umr.training.data.records import Record, Side

#: Encodes sides -> unit vectors [n, dim]; ``is_query`` says whether instructions apply.
EncodeFn = Callable[[Sequence[Side], bool], np.ndarray]
KS = (1, 5, 10)


@dataclass(frozen=True)
class TaskPool:
    """One task's distinct queries, its candidate pool and the right answers per query."""

    task: str
    queries: list[Side]
    candidates: list[Side]
    right: list[set[int]]


def task_pools(records: Sequence[Record]) -> dict[str, TaskPool]:
    """Group a split's records into one :class:`TaskPool` per task."""
    by_task: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    pools = {}
    for task, recs in sorted(by_task.items()):
        cand_ix: dict[tuple, int] = {}
        cands: list[Side] = []
        q_ix: dict[tuple, int] = {}
        queries: list[Side] = []
        right: list[set[int]] = []
        for r in recs:
            c = cand_ix.setdefault(r.positive.key, len(cands))
            if c == len(cands):
                cands.append(r.positive)
            qk = (r.query.key, r.query.instruction)
            q = q_ix.setdefault(qk, len(queries))
            if q == len(queries):
                queries.append(r.query)
                right.append(set())
            right[q].add(c)
        pools[task] = TaskPool(task, queries, cands, right)
    return pools


def recall_at(
    q: np.ndarray, c: np.ndarray, right: list[set[int]], ks: Sequence[int] = KS
) -> dict[str, float]:
    """Hit rate at each k for query vectors ``q`` against candidate vectors ``c``."""
    top = min(max(ks), len(c))
    hits = {k: 0 for k in ks}
    for a in range(0, len(q), 1024):
        scores = q[a : a + 1024] @ c.T
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        order = np.take_along_axis(scores, best, 1).argsort(axis=1)[:, ::-1]
        ranked = np.take_along_axis(best, order, 1)
        for row, r in zip(ranked, right[a : a + 1024], strict=True):
            first = next((i for i, j in enumerate(row) if int(j) in r), None)
            for k in ks:
                hits[k] += first is not None and first < k
    return {f"R@{k}": round(hits[k] / max(1, len(q)), 4) for k in ks}


def evaluate(encode: EncodeFn, records: Sequence[Record], ks: Sequence[int] = KS) -> dict:
    """``{"tasks": {task: {"R@1": .., ...}}, "macro": {...}, "sizes": {task: [queries, pool]}}``."""
    tasks, sizes = {}, {}
    for task, pool in task_pools(records).items():
        qv = encode(pool.queries, True)
        cv = encode(pool.candidates, False)
        tasks[task] = recall_at(qv, cv, pool.right, ks)
        sizes[task] = [len(pool.queries), len(pool.candidates)]
    macro = (
        {f"R@{k}": round(float(np.mean([t[f"R@{k}"] for t in tasks.values()])), 4) for k in ks}
        if tasks
        else {}
    )
    return {"tasks": tasks, "macro": macro, "sizes": sizes}
