"""The score-path teacher a distilling stage pulls early fusion toward."""

from __future__ import annotations

from pathlib import Path

import torch
from umr.training.distill import ScoreTeacher, distill_loss
from umr.training.model.build import build_model


def _pixels(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_teacher_is_the_score_path_frozen_at_the_snapshot(tiny_backbone: Path) -> None:
    model = build_model("umr-tiny", backbone_dir=tiny_backbone).eval()
    px = _pixels(3, model.cfg.image.size)
    teacher = ScoreTeacher(model)
    model.fusion_override = "score"
    ids = torch.tensor([[1, 2]] * 3)
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    feeds |= {"pool_mask": torch.ones_like(ids), "has_text": torch.zeros(3, dtype=torch.bool)}
    with torch.no_grad():
        score = model(**feeds, pixels=px, has_image=torch.ones(3, dtype=torch.bool))
        torch.testing.assert_close(teacher.vectors(px), score)
        for p in model.vision.parameters():  # training moves the student, not the teacher
            p.add_(0.5)
    torch.testing.assert_close(teacher.vectors(px), score)
    again = ScoreTeacher(model, teacher.tensors())  # rebuilt from a checkpoint
    torch.testing.assert_close(again.vectors(px), score)
    assert not any(p.requires_grad for p in again.vision.parameters())


def test_loss_covers_image_only_rows() -> None:
    class Fixed(ScoreTeacher):
        def __init__(self) -> None:  # no model needed: a constant target
            pass

        def vectors(self, pixels: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[1.0, 0.0]]).expand(len(pixels), 2)

    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    feeds = {
        "pixels": torch.zeros(3, 3, 4, 4),
        "has_image": torch.tensor([True, True, False]),
        "has_text": torch.tensor([False, True, False]),
    }
    assert distill_loss(emb, feeds, Fixed()).item() == 0.0  # only row 0 is image-only
    feeds["has_text"] = torch.tensor([False, False, False])
    assert distill_loss(emb, feeds, Fixed()).item() == 0.5  # rows 0 and 1: (0 + 1) / 2
    assert distill_loss(emb, {"has_text": feeds["has_text"]}, Fixed()).item() == 0.0
