"""Modality-aware hard negative mining (MM-Embed) between stages.

The candidate pool is embedded with the current model, split by candidate modality.
For each query: the top wrong candidates of the task's own candidate modality, plus
any candidate of *another* modality that outscores the right answer (a caption that
beats the right image teaches the model not to prefer text).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from .batches import BatchSampler, _query_id
from .data.records import TASK_MODALITIES, Side
from .encode import encode_sides
from .image_cache import ImageCache
from .model.encoder import UmrEncoder
from .model.text_batch import TextBatcher


def candidate_pools(sampler: BatchSampler) -> dict[str, list[Side]]:
    """Distinct candidates (positives of every record) grouped by modality."""
    seen: dict[str, dict[tuple, Side]] = defaultdict(dict)
    for rec in sampler.records:
        seen[rec.positive.modality].setdefault(rec.positive.key, rec.positive)
    return {m: list(d.values()) for m, d in seen.items()}


def mine(
    model: UmrEncoder,
    sampler: BatchSampler,
    tasks: Mapping[str, float],
    batcher: TextBatcher,
    cache: ImageCache,
    rng: np.random.Generator,
    *,
    top: int,
    per_task: int,
) -> dict[int, list[Side]]:
    """Hard negatives per record index, for up to ``per_task`` records of each task."""
    pools = candidate_pools(sampler)
    vecs = {m: encode_sides(model, sides, batcher, cache) for m, sides in pools.items()}
    picked: list[int] = []
    for task in sorted(tasks):
        idx = sampler.by_task.get(task, [])
        if len(idx) > per_task:
            idx = sorted(rng.choice(idx, size=per_task, replace=False).tolist())
        picked.extend(idx)
    queries = [sampler.records[i].query for i in picked]
    qv = encode_sides(model, queries, batcher, cache)
    where = {m: {s.key: i for i, s in enumerate(sides)} for m, sides in pools.items()}
    return {
        rec_i: _mine_one(sampler, rec_i, qv[row], pools, vecs, where, top)
        for row, rec_i in enumerate(picked)
    }


def _mine_one(
    sampler: BatchSampler,
    rec_i: int,
    q: np.ndarray,
    pools: dict[str, list[Side]],
    vecs: dict[str, np.ndarray],
    where: dict[str, dict[tuple, int]],
    top: int,
) -> list[Side]:
    rec = sampler.records[rec_i]
    right = sampler.positives[_query_id(rec)]
    own = TASK_MODALITIES[rec.task][1]
    pos_score = float(vecs[own][where[own][rec.positive.key]] @ q)
    found: list[Side] = []
    for modality, sides in pools.items():
        scores = vecs[modality] @ q
        limit = top if modality == own else max(1, top // 2)
        taken = 0
        n = min(limit + len(right), len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        for j in best[np.argsort(-scores[best])]:
            side = sides[int(j)]
            if side.key in right:
                continue
            if modality != own and scores[j] <= pos_score:
                break  # other modalities: only the ones that beat the right answer
            found.append(side)
            taken += 1
            if taken >= limit:
                break
    return found
