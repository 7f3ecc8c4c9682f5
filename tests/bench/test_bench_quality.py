import numpy as np
import pytest
from umr.bench.quality import cosine_drift, hit_rate_at_k

from umr.errors import InputValueError


def test_hit_rate_counts_queries_with_a_same_topic_passage():
    passages = np.eye(4, dtype=np.float32)
    topics = ["a", "b", "c", "d"]
    queries = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert hit_rate_at_k(queries, ["a", "c"], passages, topics, k=1) == 0.5
    assert hit_rate_at_k(queries, ["a", "c"], passages, topics, k=4) == 1.0


def test_hit_rate_checks_topic_counts():
    with pytest.raises(InputValueError, match="2 query topics for 1 queries"):
        hit_rate_at_k(np.ones((1, 2)), ["a", "b"], np.ones((1, 2)), ["a"])


def test_cosine_drift_reports_the_worst_row():
    a = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    b = np.array([[1, 0], [1, 1], [1, 1]], dtype=np.float32)
    d = cosine_drift(a, b)
    assert d["argmin"] == 1
    assert d["min"] == pytest.approx(np.sqrt(0.5))
    assert d["n"] == 3
    with pytest.raises(InputValueError, match="differ"):
        cosine_drift(a, b[:2])
