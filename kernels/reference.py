"""NumPy reference of the pooling + L2 subgraph, the ground truth its tests compare against."""

from __future__ import annotations

import numpy as np

from umr.errors import InputTypeError, InputValueError

POOL_EPS = 1e-9
"""Floor of the mean-pool divisor (sentence-transformers clamps its token count to 1e-9)."""

NORM_EPS = 1e-12
"""Floor of the L2 norm (``torch.nn.functional.normalize``'s default), so zeros stay zeros."""


def pool(
    hidden: np.ndarray,
    attention_mask: np.ndarray,
    pool_mask: np.ndarray,
    mode: str,
    normalize: bool = True,
    truncate_dim: int | None = None,
) -> np.ndarray:
    """Pool token states ``hidden`` [batch, seq, dim] into float32 [batch, dim].

    - ``mean``: mean over tokens weighted by ``pool_mask`` (an all-zero row gives zeros).
    - ``cls``: the state at position 0.
    - ``last``: the state at the last position where ``attention_mask`` is 1 (zeros if none).

    With ``truncate_dim`` only the first ``truncate_dim`` components are kept (Matryoshka),
    *before* normalising, so truncated rows are unit vectors again. With ``normalize`` every
    row is divided by its L2 norm (floored at ``NORM_EPS``).
    """
    if hidden.ndim != 3:
        raise InputValueError(f"hidden: expected 3 dims [batch, seq, dim], got {hidden.shape}")
    for name, mask in (("attention_mask", attention_mask), ("pool_mask", pool_mask)):
        if mask.shape != hidden.shape[:2]:
            raise InputValueError(f"{name}: shape {mask.shape} != hidden's {hidden.shape[:2]}")
    h = hidden.astype(np.float32)
    if mode == "mean":
        w = pool_mask.astype(np.float32)[:, :, None]
        out = (h * w).sum(axis=1) / np.maximum(w.sum(axis=1), POOL_EPS)
    elif mode == "cls":
        out = h[:, 0, :]
    elif mode == "last":
        out = _last_token(h, attention_mask)
    else:
        raise InputValueError(f"mode: {mode!r} is not one of 'mean', 'cls', 'last'")
    out = out[:, : check_truncate_dim(truncate_dim, h.shape[2])]
    if normalize:
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norm, NORM_EPS)
    return out.astype(np.float32)


def check_truncate_dim(truncate_dim: int | None, dim: int) -> int:
    """The number of components kept: ``dim`` for ``None``, else ``truncate_dim`` checked.

    Shared by the reference, the Triton wrapper and the TensorRT plugin so all three reject
    the same values with the same messages.
    """
    if truncate_dim is None:
        return dim
    # bool is an int subclass; True would silently mean "keep one component".
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, (int, np.integer)):
        raise InputTypeError(f"truncate_dim: expected an int or None, got {type(truncate_dim)}")
    if not 1 <= truncate_dim <= dim:
        raise InputValueError(f"truncate_dim: {truncate_dim} is not in [1, {dim}] (hidden dim)")
    return int(truncate_dim)


def _last_token(h: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    out = np.zeros((h.shape[0], h.shape[2]), dtype=np.float32)
    for row, mask in enumerate(attention_mask):
        hits = np.flatnonzero(mask)
        if hits.size:
            out[row] = h[row, hits[-1]]
    return out
