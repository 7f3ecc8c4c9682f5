"""Bad input is refused with a typed error naming the item, before anything changes."""

from __future__ import annotations

import numpy as np
import pytest
from umr.runtime.index import ExactIndex, Index

from umr.errors import InputTypeError, InputValueError

KINDS = [Index, ExactIndex]


def _good(n: int = 4, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)


def _with(row: int, value: float) -> np.ndarray:
    x = _good()
    x[row, 3] = value
    return x


def _zero_row(row: int) -> np.ndarray:
    x = _good()
    x[row] = 0.0
    return x


BAD_VECTORS = [
    (np.zeros((2, 2, 8), np.float32), InputValueError, "2-D"),
    (_good(4, 7), InputValueError, "expected dim 8, got 7"),
    (np.ones((4, 8), np.int64), InputTypeError, "dtype int64"),
    (np.ones((4, 8), bool), InputTypeError, "dtype bool"),
    (np.ones((4, 8), object), InputTypeError, "dtype object"),
    (np.ones((4, 8), np.complex64), InputTypeError, "dtype complex64"),
    (_with(2, np.nan), InputValueError, r"vectors\[2\].*NaN"),
    (_with(3, np.inf), InputValueError, r"vectors\[3\].*inf"),
    (_good().astype(np.float64) * np.array([1, 1, 1e300, 1])[:, None], InputValueError, r"\[2\]"),
    (_zero_row(1), InputValueError, r"vectors\[1\]: zero vector"),
]


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize(("vectors", "error", "pattern"), BAD_VECTORS)
def test_bad_vectors_refused_and_nothing_added(cls, vectors, error, pattern):
    index = cls.create(8, "cosine")
    index.add(_good(2), ["keep-0", "keep-1"])
    with pytest.raises(error, match=pattern):
        index.add(vectors, [10, 11, 12, 13][: len(vectors)])
    assert len(index) == 2 and 10 not in index


@pytest.mark.parametrize("cls", KINDS)
def test_zero_vector_is_fine_outside_cosine(cls):
    index = cls.create(8, "l2")
    index.add(_zero_row(1), [0, 1, 2, 3])
    assert index.search(np.zeros(8, np.float32), k=1)[0][0].id == 1


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_are_converted(cls, dtype):
    index = cls.create(8, "ip")
    index.add(_good().astype(dtype), [np.int64(1), 2, "three", np.str_("four")])
    assert sorted(map(str, index.ids())) == ["1", "2", "four", "three"]
    assert isinstance(index.search(_good()[0].astype(dtype), k=4)[0][0].score, float)


BAD_IDS = [
    ([1, 2, 3], InputValueError, "expected 4 ids"),
    ([1, 2, True, 4], InputTypeError, r"ids\[2\]: expected int or str, got bool"),
    ([1, 2.0, 3, 4], InputTypeError, r"ids\[1\]: expected int or str, got float"),
    ([1, 2, 3, None], InputTypeError, r"ids\[3\]"),
    ("abcd", InputTypeError, "sequence of ids"),
]


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize(("ids", "error", "pattern"), BAD_IDS)
def test_bad_ids_refused(cls, ids, error, pattern):
    index = cls.create(8)
    with pytest.raises(error, match=pattern):
        index.add(_good(), ids)
    assert len(index) == 0


BAD_METADATA = [
    ([{}, {"s": {1, 2}}, None, {}], InputValueError, r"metadata\[1\]: not JSON"),
    ([{}, None, {"x": float("nan")}, {}], InputValueError, r"metadata\[2\]"),
    ([{}, None, None, {1: "int key"}], InputValueError, r"metadata\[3\].*round trip"),
    ([{}, None, "text", {}], InputTypeError, r"metadata\[2\]: expected a dict"),
    ([{}, None], InputValueError, "expected 4 entries, got 2"),
    ({"a": 1}, InputTypeError, "list of dicts"),
]


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize(("metadata", "error", "pattern"), BAD_METADATA)
def test_bad_metadata_refused(cls, metadata, error, pattern):
    index = cls.create(8)
    with pytest.raises(error, match=pattern):
        index.add(_good(), [0, 1, 2, 3], metadata)
    assert len(index) == 0


@pytest.mark.parametrize("cls", KINDS)
def test_bad_search_arguments(cls):
    index = cls.create(8)
    index.add(_good(), [0, 1, 2, 3])
    for k in (0, -3):
        with pytest.raises(ValueError, match="k: expected an int >= 1"):
            index.search(_good(1), k=k)
    with pytest.raises(InputValueError, match="queries: expected dim 8, got 5"):
        index.search(np.ones(5, np.float32))
    with pytest.raises(InputTypeError, match="queries"):
        index.search(np.ones(8, np.int32))
    with pytest.raises(InputValueError, match=r"queries\[0\]: zero vector"):
        index.search(np.zeros(8, np.float32))
    for bad in (np.nan, np.inf, -np.inf):  # one row takes a fast path; it must still refuse
        with pytest.raises(InputValueError, match=r"queries\[0\]: contains NaN or inf"):
            index.search(np.array([1, 2, 3, bad, 5, 6, 7, 8], np.float32))
    huge = np.full(8, 1e30, np.float32)  # its squared norm overflows, yet it is valid
    assert len(index.search(huge, k=2)[0]) == 2


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"space": "dot"}, "space"), ({"M": 1}, "M"), ({"ef": 0}, "ef"), ({"capacity": 0}, "cap")],
)
def test_bad_create_arguments(kwargs, pattern):
    with pytest.raises(InputValueError, match=pattern):
        Index.create(8, **kwargs)


@pytest.mark.parametrize("cls", KINDS)
def test_cosine_handles_norms_float32_cannot_square(cls):
    index = cls.create(4, "cosine")
    vectors = np.array([[1e30, 0, 0, 0], [0, 1e-30, 0, 0], [1e-30, 1e-30, 0, 0]], np.float32)
    index.add(vectors, ["big", "tiny", "diag"])
    queries = np.array([[1, 0, 0, 0], [0, 1e-35, 0, 0], [1e20, 1e20, 0, 0]], np.float32)
    got = [[(h.id, round(h.score, 4)) for h in row[:2]] for row in index.search(queries, k=3)]
    assert got[0] == [("big", 1.0), ("diag", 0.7071)]
    assert got[1] == [("tiny", 1.0), ("diag", 0.7071)]
    assert got[2][0] == ("diag", 1.0)
