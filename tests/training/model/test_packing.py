"""Length-group packing: the same vectors and gradients as one padded batch."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import torch
from umr.training.model.build import build_model
from umr.training.model.packing import MIN_GROUP_ROWS, group_bounds
from umr.training.model.text_batch import TextBatcher

WORDS = ["red", "blue", "green", "circle", "square", "with", "a", "cross", "star", "dark"]


def _mixed_batch(tb: TextBatcher, n: int, size: int) -> dict[str, torch.Tensor]:
    """Rows of every kind and length: text only, image only, pairs, instructions."""
    gen = torch.Generator().manual_seed(0)
    texts, instr = [], []
    for i in range(n):
        k = int(torch.randint(0, 10, (1,), generator=gen))
        texts.append(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)) or None)
        instr.append("find the picture" if i % 3 == 0 else None)
    feeds = tb.encode(texts, instr)
    has = torch.tensor([i % 4 != 1 or texts[i] is None for i in range(n)])
    feeds["pixels"] = torch.rand((n, 3, size, size), generator=gen) * 2 - 1
    feeds["has_image"] = has
    return feeds


@pytest.mark.parametrize("fusion", ["early", "score"])
def test_packed_rows_match_one_padded_batch(tiny_backbone: Path, fusion: str) -> None:
    model = build_model("umr-tiny", backbone_dir=tiny_backbone, seed=0)
    model.fusion_override = fusion
    model.train()
    model.backbone.eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = _mixed_batch(tb, 3 * MIN_GROUP_ROWS + 5, model.cfg.image.size)
    target = torch.randn(len(feeds["input_ids"]), model.dim)

    def run(groups: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        model.length_groups = groups
        out = model(**feeds)
        (out * target).sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain, plain_grads = run(1)
    packed, packed_grads = run(4)
    torch.testing.assert_close(packed, plain, atol=2e-5, rtol=1e-4)
    assert len(packed_grads) == len(plain_grads) > 0
    for a, b in zip(packed_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_small_batches_run_unpacked(tiny_backbone: Path) -> None:
    model = build_model("umr-tiny", backbone_dir=tiny_backbone, seed=0).eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = _mixed_batch(tb, 2 * MIN_GROUP_ROWS - 1, model.cfg.image.size)
    calls = []
    encode = model._encode
    model._encode = lambda e, m: calls.append(len(e)) or encode(e, m)  # type: ignore[method-assign]
    with torch.no_grad():
        model(**feeds)
    assert calls == [2 * MIN_GROUP_ROWS - 1]


def test_groups_cut_where_padding_is_saved() -> None:
    lengths = [3] * 20 + [4] * 20 + [30] * 20
    bounds = group_bounds(lengths, 2)
    assert bounds == [(0, 40), (40, 60)]
    assert group_bounds(lengths, 3) == [(0, 20), (20, 40), (40, 60)]
    assert group_bounds(lengths, 1) == [(0, 60)]


@pytest.mark.parametrize(("n", "groups"), [(0, 4), (5, 4), (MIN_GROUP_ROWS * 2 - 1, 4), (100, 8)])
def test_groups_cover_every_row_and_respect_the_minimum(n: int, groups: int) -> None:
    lengths = sorted((i * 7919) % 37 + 2 for i in range(n))
    bounds = group_bounds(lengths, groups)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a == b for (_, a), (b, _) in pairwise(bounds))
    assert len(bounds) <= max(1, groups)
    if len(bounds) > 1:
        assert all(b - a >= MIN_GROUP_ROWS for a, b in bounds)


def test_equal_lengths_need_no_cut() -> None:
    assert group_bounds([5] * 64, 4) == [(0, 64)]
