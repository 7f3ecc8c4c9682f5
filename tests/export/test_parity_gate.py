"""The parity gate's verdicts and error messages (fast, NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest
from umr.export.parity import compare, require

from umr.errors import ParityError


def test_require_names_the_worst_text_and_cosine():
    a = np.eye(3, dtype=np.float32)
    b = a.copy()
    b[1] = [0.6, 0.8, 0.0]  # cosine 0.8 with row 1 of a
    comp = compare(a, b)
    with pytest.raises(ParityError, match=r"0\.800000 < gate 0\.99 on text #1 'second'"):
        require(comp, 0.99, ["first", "second", "third"], "int8 vs fp32")
    require(comp, 0.5, ["first", "second", "third"], "int8 vs fp32")  # passes: no error


def test_parity_record_flags_a_failed_gate():
    a = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    rec = compare(a, np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)).parity("fp32", 0.9)
    assert (rec.reference, rec.n_texts, rec.passed) == ("fp32", 2, False)
    assert rec.min_cosine == pytest.approx(0.707107, abs=1e-6)
    assert rec.mean_cosine == pytest.approx((1 + 0.707107) / 2, abs=1e-6)
