"""Fixtures for the index tests: small clustered data made on the fly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def make_clustered(n: int, dim: int, clusters: int = 20, spread: float = 1.0, seed: int = 0):
    """Unit vectors from gaussian clusters (same recipe as bench/index_tuning.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    x = centres[rng.integers(0, clusters, n)] + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def clustered() -> Callable[..., np.ndarray]:
    """Factory: ``clustered(n, dim, clusters=20, spread=1.0, seed=0)``."""
    return make_clustered
