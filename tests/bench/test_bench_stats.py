import math

import numpy as np
import pytest
from umr.bench.stats import latency_summary, median, percentile, ratio

from umr.errors import InputValueError


def test_percentile_matches_numpy_linear():
    rng = np.random.default_rng(3)
    xs = rng.exponential(size=101).tolist()
    for q in (0, 1, 50, 95, 99, 100):
        assert math.isclose(percentile(xs, q), float(np.percentile(xs, q)), rel_tol=1e-12)


def test_median_odd_and_even():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_latency_summary_is_in_milliseconds():
    s = latency_summary([0.001] * 9 + [0.011])
    assert s["n"] == 10
    assert s["p50_ms"] == pytest.approx(1.0)
    assert s["p99_ms"] == pytest.approx(1.0 + 0.91 * 10.0)
    assert s["mean_ms"] == pytest.approx(2.0)


def test_bad_samples_name_the_problem():
    with pytest.raises(InputValueError, match="no samples"):
        median([])
    with pytest.raises(InputValueError, match="sample 1 is nan"):
        median([1.0, float("nan")])
    with pytest.raises(InputValueError, match="q=101"):
        percentile([1.0], 101)


def test_ratio_handles_missing_values():
    assert ratio(6.0, 3.0) == 2.0
    assert ratio(None, 3.0) is None
    assert ratio(1.0, 0.0) is None
