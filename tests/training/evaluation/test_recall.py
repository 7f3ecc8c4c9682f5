"""Recall@k: pools, grouping of repeated queries, and the hit-rate arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from umr.training.data.records import Record, Side
from umr.training.evaluation.recall import evaluate, recall_at, task_pools


def test_recall_counts_a_hit_if_any_right_answer_is_in_top_k() -> None:
    c = np.eye(4, dtype=np.float32)
    q = np.array([[1, 0, 0, 0], [0, 0.9, 1, 0], [0, 0, 0.5, 1]], dtype=np.float32)
    right = [{0}, {1}, {1, 3}]
    r = recall_at(q, c, right, ks=(1, 2))
    assert r == {"R@1": round(2 / 3, 4), "R@2": 1.0}


def test_repeated_queries_share_their_positives(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    recs = [
        Record("qt->ci", Side(text="cat"), Side(image=a)),
        Record("qt->ci", Side(text="cat"), Side(image=b)),
        Record("qt->ci", Side(text="dog"), Side(image=b)),
    ]
    pool = task_pools(recs)["qt->ci"]
    assert len(pool.queries) == 2 and len(pool.candidates) == 2
    assert pool.right == [{0, 1}, {1}]


def test_evaluate_perfect_and_macro(tmp_path: Path) -> None:
    recs = [Record("qt->ct", Side(text=f"q{i}"), Side(text=f"c{i}")) for i in range(5)]

    def encode(sides, is_query):  # type: ignore[no-untyped-def]
        out = np.zeros((len(sides), 8), dtype=np.float32)
        for j, s in enumerate(sides):
            out[j, int(s.text[1:])] = 1.0
        return out

    res = evaluate(encode, recs)
    assert res["tasks"]["qt->ct"] == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0}
    assert res["macro"]["R@1"] == 1.0 and res["sizes"]["qt->ct"] == [5, 5]
