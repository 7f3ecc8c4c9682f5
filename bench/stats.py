"""Small statistics helpers for benchmark samples (medians, percentiles, ratios).

Percentiles use linear interpolation between closest ranks (NumPy's default), so a
p99 over 100 samples is not simply the largest one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from umr.errors import InputValueError


def _checked(samples: Sequence[float], what: str) -> list[float]:
    values = [float(x) for x in samples]
    if not values:
        raise InputValueError(f"{what}: no samples; expected at least one")
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise InputValueError(f"{what}: sample {i} is {v}; expected a finite number")
    return values


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples`` with linear interpolation."""
    if not 0.0 <= q <= 100.0:
        raise InputValueError(f"percentile q={q}; expected a value in [0, 100]")
    values = sorted(_checked(samples, "percentile"))
    pos = (len(values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    """The median of ``samples`` (mean of the two middle values for even counts)."""
    return percentile(samples, 50.0)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds plus the sample count, from samples in seconds."""
    ms = [s * 1e3 for s in _checked(seconds, "latency_summary")]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
        "n": len(ms),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
