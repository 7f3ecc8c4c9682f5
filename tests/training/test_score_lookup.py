"""Score fusion with a frozen backbone looks text up instead of running the backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from umr.training.data.records import Side
from umr.training.encode import side_inputs
from umr.training.recipe import load_recipe
from umr.training.train import Trainer

pytestmark = pytest.mark.slow


def _trainer(tmp_path: Path, backbone: Path, make_recipe, fusion: str | None) -> Trainer:
    path = make_recipe(steps=1)
    data = json.loads(path.read_text())
    data["augment"] = {k: 0.0 for k in ("p_scale", "p_blur", "p_stroke", "p_colour")}
    data["augment"] |= {"p_grayscale": 0.0, "p_outline": 0.0}
    data["stages"][0]["fusion"] = fusion
    path.write_text(json.dumps(data))
    trainer = Trainer(load_recipe(path), tmp_path / "run", backbone_dir=backbone)
    trainer.out.mkdir()
    trainer.model.fusion_override = fusion
    trainer._prepare_bank(trainer.recipe.stages[0])
    trainer.model.eval()  # the same BatchNorm statistics on both paths
    return trainer


def _sides(trainer: Trainer) -> list[Side]:
    images = sorted({s.image for r in trainer.records for s in (r.query, r.positive) if s.image})
    return [
        Side(image=images[0]),
        Side(image=images[1], instruction="find the name"),
        Side(text="dark", image=images[2]),
        Side(text="red circle"),
        Side(text="dark", image=images[3]),
    ]


def test_lookup_matches_the_backbone_pass(
    tmp_path: Path, tiny_backbone: Path, make_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(tmp_path, tiny_backbone, make_recipe, "score")
    sides = _sides(trainer)
    with torch.no_grad():
        want = trainer.model(**side_inputs(sides, trainer.batcher, trainer.cache))

        def no_backbone(*_: object) -> None:
            raise AssertionError("the backbone ran although every text was looked up")

        monkeypatch.setattr(trainer.model, "_encode", no_backbone)
        got, _ = trainer._embed(sides, [False] * len(sides))
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_early_fusion_still_runs_the_backbone(
    tmp_path: Path, tiny_backbone: Path, make_recipe
) -> None:
    trainer = _trainer(tmp_path, tiny_backbone, make_recipe, None)
    sides = _sides(trainer)
    assert not trainer._score_from_lookup([s for s in sides if s.image is not None])
    with torch.no_grad():
        want = trainer.model(**side_inputs(sides, trainer.batcher, trainer.cache))
        got, _ = trainer._embed(sides, [False] * len(sides))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
