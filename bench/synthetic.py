"""A clustered vector set grown from real embeddings, to reach index sizes the corpus lacks.

Recipe (deterministic for a seed): keep every real vector; then, until ``n_total``
vectors exist, pick a real vector uniformly at random, add isotropic Gaussian noise
``N(0, sigma^2 I)`` and renormalise to unit length. With ``sigma = 0.03`` in 384
dimensions the noise has norm ~0.59, so a child keeps cosine ~0.86 to its parent and
~0.74 to its siblings: each real text becomes a cluster of near-paraphrases, placed
where real texts lie, rather than the uniform sphere that flatters HNSW.
Held-out queries are drawn the same way with a different seed, so they are never
exact copies of indexed vectors.
"""

from __future__ import annotations

import numpy as np

from umr.errors import InputValueError

DEFAULT_SIGMA = 0.03


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def perturbed(real: np.ndarray, n: int, sigma: float, seed: int) -> np.ndarray:
    """``n`` unit vectors, each a random real vector plus ``N(0, sigma^2)`` noise."""
    if real.ndim != 2 or real.shape[0] == 0:
        raise InputValueError(f"real vectors have shape {real.shape}; expected [n>0, dim]")
    if n < 0 or sigma < 0:
        raise InputValueError(f"n={n}, sigma={sigma}; expected both >= 0")
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, real.shape[0], size=n)
    noise = rng.standard_normal((n, real.shape[1]), dtype=np.float32) * np.float32(sigma)
    return _unit(real[parents] + noise)


def clustered(
    real: np.ndarray, n_total: int, sigma: float = DEFAULT_SIGMA, seed: int = 0
) -> np.ndarray:
    """The real vectors (renormalised) followed by perturbed copies up to ``n_total`` rows."""
    base = _unit(np.asarray(real, dtype=np.float32))
    if n_total <= base.shape[0]:
        return base[:n_total]
    extra = perturbed(base, n_total - base.shape[0], sigma, seed)
    return np.concatenate([base, extra])
