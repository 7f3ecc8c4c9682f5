"""Sampling training batches: tasks by weight, records uniformly, hard negatives, masks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data.records import Record, Side

#: Tasks whose answer is a colour (skin tone): no colour-changing augmentation there.
COLOUR_TASKS = frozenset({"(qi,qt)->ci", "(qi,qt)->ct", "(qi,qt)->(ci,ct)"})


@dataclass(frozen=True)
class TrainBatch:
    """Queries, candidates (positives then negatives) and the loss's targets/masks."""

    queries: list[Side]
    candidates: list[Side]
    targets: torch.Tensor
    false_negatives: torch.Tensor
    keep_colour_q: list[bool]
    keep_colour_c: list[bool]
    tasks: list[str]
    rights: list[set]  # per query: keys of every right candidate
    text_answers: list[bool]  # per query: its positive is text only (it may use the text bank)

    def text_image_rows(self) -> torch.Tensor:
        """Per query: one of it and its positive is text only, the other image only."""
        pairs = (
            {q.modality, self.candidates[int(t)].modality}
            for q, t in zip(self.queries, self.targets, strict=True)
        )
        return torch.tensor([p == {"t", "i"} for p in pairs], dtype=torch.bool)


def _query_id(rec: Record) -> tuple:
    return (rec.task, rec.query.key, rec.query.instruction)


def drop_styles(records: Sequence[Record], styles: Sequence[str]) -> list[Record]:
    """Records that use no image of the excluded drawing ``styles`` (a held-out style)."""
    if not styles:
        return list(records)
    bad = set(styles)
    return [r for r in records if not bad.intersection(r.meta.get("styles", ()))]


class BatchSampler:
    """Draws :class:`TrainBatch` es from records with a seeded numpy generator."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = list(records)
        self.by_task: dict[str, list[int]] = defaultdict(list)
        self.positives: dict[tuple, set] = defaultdict(set)
        for i, rec in enumerate(self.records):
            self.by_task[rec.task].append(i)
            self.positives[_query_id(rec)].add(rec.positive.key)
        self.mined: dict[int, list[Side]] = {}

    def tasks_present(self, weights: Mapping[str, float]) -> dict[str, float]:
        """The weights restricted to tasks that have records."""
        return {t: w for t, w in weights.items() if self.by_task.get(t)}

    def sample(
        self, rng: np.random.Generator, weights: Mapping[str, float], size: int, hard: int
    ) -> TrainBatch:
        present = self.tasks_present(weights)
        names = sorted(present)
        p = np.array([present[t] for t in names], dtype=np.float64)
        chosen = rng.choice(len(names), size=size, p=p / p.sum())
        picks = [self._pick(rng, names[t]) for t in chosen]
        recs = [self.records[i] for i in picks]
        negs: list[Side] = []
        colour = [r.task in COLOUR_TASKS for r in recs]
        for rec_i, rec in zip(picks, recs, strict=True):
            mine = self._negatives(rng, rec_i, rec, hard)
            negs.extend(mine)
            colour.extend([rec.task in COLOUR_TASKS] * len(mine))
        return self._assemble(recs, [r.positive for r in recs] + negs, colour)

    def _pick(self, rng: np.random.Generator, task: str) -> int:
        pool = self.by_task[task]
        return pool[int(rng.integers(len(pool)))]

    def _negatives(
        self, rng: np.random.Generator, rec_i: int, rec: Record, hard: int
    ) -> list[Side]:
        if hard <= 0:
            return []
        # The record's own near misses stay beside the mined ones: mining only reaches
        # some queries, and it need not find every sibling.
        pool = list(self.mined.get(rec_i, ()))
        seen = {s.key for s in pool}
        pool += [n for n in rec.negatives if n.key not in seen]
        if not pool:
            return []
        take = rng.choice(len(pool), size=min(hard, len(pool)), replace=False)
        return [pool[int(j)] for j in take]

    def _assemble(self, recs: list[Record], cands: list[Side], colour: list[bool]) -> TrainBatch:
        n, m = len(recs), len(cands)
        fn = torch.zeros((n, m), dtype=torch.bool)
        keys = [c.key for c in cands]
        # Hard negatives carry no identity; they were mined as wrong answers.
        idents = [_identity(r) for r in recs] + [None] * (m - n)
        modes = [c.modality for c in cands]
        for i, rec in enumerate(recs):
            right = self.positives[_query_id(rec)]
            own, mode = idents[i], rec.positive.modality
            for j in range(m):
                if j == i:
                    continue
                # The same emoji in another modality (its name, for an image-to-image
                # query) is not this task's answer, but pushing it away would pull the
                # modalities apart: it is neither positive nor negative.
                if keys[j] in right or (own is not None and idents[j] == own and modes[j] != mode):
                    fn[i, j] = True
        return TrainBatch(
            queries=[r.query for r in recs],
            candidates=cands,
            targets=torch.arange(n),
            false_negatives=fn,
            keep_colour_q=[r.task in COLOUR_TASKS for r in recs],
            keep_colour_c=colour,
            tasks=[r.task for r in recs],
            rights=[self.positives[_query_id(r)] for r in recs],
            text_answers=[r.positive.modality == "t" for r in recs],
        )


def _identity(rec: Record) -> str | None:
    ident = rec.meta.get("identity") if rec.meta else None
    return str(ident) if ident is not None else None
