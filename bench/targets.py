"""The issue's performance and quality targets, checked against a measured report.

Thresholds live here, results never do: every verdict is computed from the numbers
of the run at hand.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    """One check: ``value op threshold``; ``value`` is None when it was not measured."""

    name: str
    value: float | None
    op: str
    threshold: float

    @property
    def met(self) -> bool | None:
        """True/False, or None when the value is missing."""
        if self.value is None:
            return None
        return _OPS[self.op](self.value, self.threshold)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict including the verdict."""
        return {**asdict(self), "met": self.met}


def report_value(report: dict[str, Any], *path: str) -> float | None:
    """The number at ``path`` in a report dict, or None where any step is missing."""
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return float(node)


def evaluate_targets(report: dict[str, Any]) -> list[Target]:
    """All targets of the text step, evaluated on ``report`` (the bench_text.json dict)."""
    g = lambda *p: report_value(report, *p)  # noqa: E731 - a local shorthand keeps the table readable
    r_fp32, r_int8 = g("quality", "recall_at_10", "fp32"), g("quality", "recall_at_10", "int8")
    recall_gap = None if r_fp32 is None or r_int8 is None else r_int8 - r_fp32
    cold = [g("cold_start", v, "total_s") for v in ("fp32", "int8")]
    return [
        Target("fp32 docs/s vs ST (x)", g("engines", "fp32", "throughput", "x_st"), ">=", 2.5),
        Target("fp32 % of matmul peak", g("engines", "fp32", "pct_of_peak"), ">=", 55.0),
        Target("int8 docs/s vs ST (x)", g("engines", "int8", "throughput", "x_st"), ">=", 4.0),
        Target("int8 min cosine to fp32", g("quality", "int8_vs_fp32_cosine", "min"), ">=", 0.99),
        Target("int8 Recall@10 minus fp32", recall_gap, ">=", -0.01),
        Target("fp32 batch-1 p50 (ms)", g("engines", "fp32", "latency", "p50_ms"), "<=", 2.0),
        Target("int8 batch-1 p50 (ms)", g("engines", "int8", "latency", "p50_ms"), "<=", 1.0),
        Target("HNSW recall@10 vs exact", g("index", "recall_at_10"), ">=", 0.98),
        Target(
            "HNSW QPS / hnswlib same graph, batch-1", g("index", "umr_vs_hnswlib_loop"), ">=", 0.9
        ),
        Target(
            "HNSW QPS / hnswlib same graph, batched", g("index", "umr_vs_hnswlib_batch"), ">=", 0.9
        ),
        Target("HNSW QPS / brute force, batch-1", g("index", "umr_vs_brute_loop"), ">=", 20.0),
        Target("HNSW QPS / brute force, batched", g("index", "umr_vs_brute_batch"), ">=", 20.0),
        Target("import + Embedder.load fp32 (s)", cold[0], "<", 1.0),
        Target("import + Embedder.load int8 (s)", cold[1], "<", 1.0),
    ]
