"""The training losses: InfoNCE's masks and the text_match term."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from umr.training.loss import info_nce, text_match


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_text_match_is_one_minus_cosine_over_marked_rows_only() -> None:
    q = _unit([1, 0], [1, 0], [0, 1])
    c = _unit([1, 1], [0, 1], [1, 0])  # row 0's positive at 45 degrees, row 1's at 90
    targets = torch.tensor([0, 1, 2])
    cross = torch.tensor([True, True, False])
    want = ((1 - math.cos(math.pi / 4)) + 1.0) / 2
    assert float(text_match(q, c, targets, cross)) == pytest.approx(want, abs=1e-6)
    assert float(text_match(q, c, targets, torch.tensor([False, False, False]))) == 0.0


def test_text_match_follows_the_targets_and_pulls_the_pair_together() -> None:
    q = _unit([1, 0]).requires_grad_(True)
    c = _unit([1, 0], [0, 1]).requires_grad_(True)
    term = text_match(q, c, torch.tensor([1]), torch.tensor([True]))
    assert float(term) == pytest.approx(1.0)  # its positive is column 1, orthogonal
    term.backward()
    assert q.grad is not None and c.grad is not None
    assert float(q.grad[0, 1]) < 0 and float(c.grad[1, 0]) < 0  # descent moves them closer
    assert float(c.grad[0].abs().sum()) == 0.0  # the other candidate is not touched


def test_info_nce_ignores_masked_columns() -> None:
    q = _unit([1, 0])
    c = _unit([0.9, 0.1], [1, 0])
    t = torch.tensor(0.05)
    masked = info_nce(q, c, torch.tensor([0]), torch.tensor([[False, True]]), t)
    assert float(masked) == pytest.approx(0.0, abs=1e-6)  # only its positive is left
    plain = info_nce(q, c, torch.tensor([0]), torch.tensor([[False, False]]), t)
    assert float(plain) > 0.1
