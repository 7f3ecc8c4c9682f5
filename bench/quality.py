"""Retrieval quality on the language-reference set, and drift of one engine to another.

Recall@10 here is the hit rate: the share of queries with at least one passage of
their own topic among the 10 passages of highest cosine (exact search).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from umr.errors import InputValueError


def _top_k(queries: np.ndarray, passages: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ passages.T
    k = min(k, passages.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def hit_rate_at_k(
    queries: np.ndarray,
    query_topics: list[str],
    passages: np.ndarray,
    passage_topics: list[str],
    k: int = 10,
) -> float:
    """Share of queries whose top-``k`` passages include one of the same topic."""
    if len(query_topics) != queries.shape[0] or len(passage_topics) != passages.shape[0]:
        raise InputValueError(
            f"topics do not match vectors: {len(query_topics)} query topics for "
            f"{queries.shape[0]} queries, {len(passage_topics)} for {passages.shape[0]} passages"
        )
    top = _top_k(queries, passages, k)
    topics = np.asarray(passage_topics)
    hits = [qt in set(topics[row]) for qt, row in zip(query_topics, top, strict=True)]
    return float(np.mean(hits))


def cosine_drift(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Per-row cosine between two embeddings of the same texts: min, mean, argmin."""
    if a.shape != b.shape:
        raise InputValueError(f"cosine_drift: shapes {a.shape} and {b.shape} differ")
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = np.sum(an * bn, axis=1)
    return {
        "min": float(cos.min()),
        "mean": float(cos.mean()),
        "p01": float(np.percentile(cos, 1)),
        "argmin": int(cos.argmin()),
        "n": int(cos.shape[0]),
    }
