import numpy as np
import pytest
from umr.bench.synthetic import clustered, perturbed

from umr.errors import InputValueError


def _real(n=50, dim=384, seed=1):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_clustered_keeps_real_rows_and_is_unit_norm():
    real = _real()
    data = clustered(real, 500, sigma=0.03, seed=0)
    assert data.shape == (500, 384) and data.dtype == np.float32
    np.testing.assert_allclose(data[:50], real, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)


def test_clustered_is_deterministic_per_seed():
    real = _real()
    np.testing.assert_array_equal(clustered(real, 200, seed=4), clustered(real, 200, seed=4))
    assert not np.array_equal(clustered(real, 200, seed=4), clustered(real, 200, seed=5))


def test_children_stay_close_to_a_parent():
    real = _real()
    kids = perturbed(real, 300, sigma=0.03, seed=2)
    best = (kids @ real.T).max(axis=1)
    # expected cosine 1/sqrt(1 + 0.03^2 * 384) ~ 0.86
    assert 0.8 < float(np.median(best)) < 0.92


def test_bad_inputs_are_rejected():
    with pytest.raises(InputValueError, match="shape"):
        perturbed(np.zeros((0, 4), np.float32), 3, 0.1, 0)
    with pytest.raises(InputValueError, match="sigma"):
        perturbed(_real(), 3, -0.1, 0)
