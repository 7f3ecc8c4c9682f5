"""The hnswlib header parser agrees with what hnswlib itself reports."""

from __future__ import annotations

import math

import hnswlib
import numpy as np
import pytest
from umr.runtime.index.hnsw_header import HEADER_SIZE, Expected, check_index_file

from umr.errors import IndexCorruptError

CONFIGS = [(3, 2, 50, "l2"), (64, 12, 700, "ip"), (5, 16, 0, "cosine")]


@pytest.mark.parametrize(("dim", "M", "n", "space"), CONFIGS)
def test_header_matches_hnswlib(dim, M, n, space, tmp_path):
    raw = hnswlib.Index(space=space, dim=dim)
    raw.init_index(max_elements=1000, M=M, ef_construction=33)
    if n:
        raw.add_items(np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32))
        raw.mark_deleted(n // 2)
    path = tmp_path / "h.bin"
    raw.save_index(str(path))
    want = Expected(dim=dim, M=M, ef_construction=33, labels=n, capacity=1000,
                    deleted=frozenset({n // 2}) if n else frozenset())  # fmt: skip
    head = check_index_file(path, want)
    assert (head.dim, head.M, head.maxM, head.maxM0) == (dim, M, M, 2 * M)
    assert (head.count, head.max_elements, head.ef_construction) == (n, 1000, 33)
    assert math.isclose(head.mult, 1 / math.log(M))
    assert path.stat().st_size == raw.index_file_size() >= HEADER_SIZE
    with pytest.raises(IndexCorruptError, match="dim"):
        check_index_file(path, Expected(**{**want.__dict__, "dim": dim + 1}))
