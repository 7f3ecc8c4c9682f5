"""Input checks shared by both index kinds; each refuses a whole call before any change."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from umr.errors import InputTypeError, InputValueError

SPACES = ("cosine", "ip", "l2")
Id = int | str


def check_space(space: object) -> str:
    """Return ``space`` if it is one of :data:`SPACES`."""
    if space not in SPACES:
        raise InputValueError(f"space: expected one of {', '.join(SPACES)}, got {space!r}")
    return str(space)


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputTypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise InputValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def as_matrix(vectors: Any, dim: int, space: str, what: str = "vectors") -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 [n, dim] array, or raise.

    A 1-D array is one row. Refuses non-floating dtypes, NaN/inf, and (in cosine
    space) all-zero rows, naming the first offending row. In cosine space a row whose
    length float32 cannot square (beyond ~1e15 or below ~1e-15) comes back rescaled.
    """
    arr = np.asarray(vectors)
    if arr.dtype.kind != "f":
        raise InputTypeError(
            f"{what}: expected a floating array (float16/32/64), got dtype {arr.dtype}"
        )
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputValueError(f"{what}: expected a 2-D [n, {dim}] array, got {arr.ndim}-D")
    if arr.shape[1] != dim:
        raise InputValueError(f"{what}: expected dim {dim}, got {arr.shape[1]}")
    if arr.dtype != np.float32 or not arr.flags.c_contiguous:
        with np.errstate(over="ignore"):  # float64 overflow becomes inf, reported below
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    if len(arr) == 1 and _one_row_ok(arr[0], space):
        return arr  # the per-query hot path: one dot product instead of array reductions
    # Squared norms in float64: exact for float32 input (no overflow, no underflow), and
    # NaN/inf propagate into them, so they answer every check below.
    sq = np.einsum("ij,ij->i", arr, arr, dtype=np.float64)
    if not np.isfinite(sq).all():
        row = int(np.flatnonzero(~np.isfinite(sq))[0])
        raise InputValueError(f"{what}[{row}]: contains NaN or inf (or overflows float32)")
    if space != "cosine":
        return arr
    if not sq.all():
        row = int(np.flatnonzero(sq == 0)[0])
        raise InputValueError(f"{what}[{row}]: zero vector has no direction in cosine space")
    return _rescale_extremes(arr, sq)


# hnswlib normalizes cosine vectors in float32: a squared norm past ~1e38 overflows
# and one below ~1e-38 underflows, either way turning the vector into garbage.
_SAFE_SQ = (1e-30, 1e30)


def _one_row_ok(row: np.ndarray, space: str) -> bool:
    """True if ``row`` needs no further check or change (one float64 dot product)."""
    row64 = row.astype(np.float64)
    sq = float(np.dot(row64, row64))
    if space == "cosine":
        return _SAFE_SQ[0] < sq < _SAFE_SQ[1]
    return 0.0 <= sq < math.inf


def _rescale_extremes(arr: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """Scale rows whose norm float32 arithmetic cannot handle to unit length.

    Cosine ignores length, so this changes no score; other rows are left as given.
    """
    extreme = (sq <= _SAFE_SQ[0]) | (sq >= _SAFE_SQ[1])
    if not extreme.any():
        return arr
    arr = arr.copy()
    rows = arr[extreme].astype(np.float64) / np.sqrt(sq[extreme])[:, None]
    arr[extreme] = rows.astype(np.float32)
    return arr


def normalize_id(value: object, i: int) -> Id:
    """Return an id as a plain ``int`` or ``str``; bools, floats and others are refused."""
    if isinstance(value, bool | np.bool_):
        raise InputTypeError(f"ids[{i}]: expected int or str, got bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str):
        return str(value)
    raise InputTypeError(f"ids[{i}]: expected int or str, got {type(value).__name__}")


def normalize_ids(ids: Any, n: int | None = None) -> list[Id]:
    """Return ``ids`` as a list of plain ids; with ``n``, its length must be ``n``."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence | np.ndarray):
        raise InputTypeError(f"ids: expected a sequence of ids, got {type(ids).__name__}")
    out = [normalize_id(v, i) for i, v in enumerate(ids)]
    if n is not None and len(out) != n:
        raise InputValueError(f"ids: expected {n} ids (one per vector), got {len(out)}")
    return out


def check_metadata(metadata: Any, n: int) -> list[dict[str, Any] | None]:
    """Return ``metadata`` as a list of n JSON-serializable dicts or Nones."""
    if metadata is None:
        return [None] * n
    if isinstance(metadata, dict) or not isinstance(metadata, Sequence):
        raise InputTypeError(
            f"metadata: expected None or a list of dicts, got {type(metadata).__name__}"
        )
    if len(metadata) != n:
        raise InputValueError(f"metadata: expected {n} entries, got {len(metadata)}")
    for i, item in enumerate(metadata):
        if item is None:
            continue
        if not isinstance(item, dict):
            kind = type(item).__name__
            raise InputTypeError(f"metadata[{i}]: expected a dict or None, got {kind}")
        try:
            same = json.loads(json.dumps(item, allow_nan=False)) == item
        except (TypeError, ValueError) as exc:
            raise InputValueError(f"metadata[{i}]: not JSON-serializable ({exc})") from exc
        if not same:  # int keys or tuples would come back changed after save/load
            raise InputValueError(
                f"metadata[{i}]: does not survive a JSON round trip (non-str keys or tuples?)"
            )
    return list(metadata)


def check_k(k: object) -> int:
    """Return ``k`` if it is an int >= 1 (a ValueError subclass otherwise)."""
    return check_positive_int("k", k)
