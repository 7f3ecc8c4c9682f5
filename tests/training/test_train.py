"""Training on a tiny configuration: loss falls, checkpoints round-trip, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from umr.training.checkpoint import load_checkpoint, trained_state
from umr.training.recipe import load_recipe, recipe_from_dict
from umr.training.train import Trainer, train

from umr.errors import CheckpointError, ConfigError, DataError

pytestmark = pytest.mark.slow


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_loss_falls_and_the_log_has_the_learning_rates(
    tmp_path: Path, tiny_backbone: Path, make_recipe
) -> None:
    recipe = load_recipe(make_recipe(steps=30))
    train(recipe, tmp_path / "run", backbone_dir=tiny_backbone, progress=False)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 60
    first, last = sum(losses[:5]) / 5, sum(losses[25:30]) / 5
    assert last < 0.8 * first, (first, last)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    for stage in recipe.stages:  # rates, not the schedule's factor: warm-up 1, then decay to 10%
        logged = [r for r in rows if r.get("stage") == stage.name and "loss" in r]
        assert logged[0]["lr"] == pytest.approx(stage.lr)
        assert logged[-1]["lr"] == pytest.approx(0.1 * stage.lr, rel=0.05)
        if stage.backbone == "lora":
            assert logged[0]["lora_lr"] == pytest.approx(stage.lora_lr)
        else:
            assert "lora_lr" not in logged[0]


def test_checkpoint_round_trips_exactly(tmp_path: Path, tiny_backbone: Path, make_recipe) -> None:
    recipe = load_recipe(make_recipe(steps=2))
    final = train(recipe, tmp_path / "run", backbone_dir=tiny_backbone, progress=False)
    trainer = Trainer(recipe, tmp_path / "unused", backbone_dir=tiny_backbone)
    trainer.resume(final)
    loaded = load_checkpoint(final, backbone_dir=tiny_backbone)
    a, b = trained_state(trainer.model), trained_state(loaded)
    assert a.keys() == b.keys() and any("lora_" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "stage2",
    [{}, {"distill_score": 1.0}, {"text_match": 1.0}],
    ids=["plain", "distill", "text_match"],
)
def test_resume_continues_identically(
    tmp_path: Path, tiny_backbone: Path, make_recipe, stage2: dict
) -> None:
    recipe = load_recipe(make_recipe(steps=4, **stage2))
    straight = train(recipe, tmp_path / "straight", backbone_dir=tiny_backbone, progress=False)
    # Stop after the checkpoint at step 2 of stage 2 (mined negatives and optimizer in it).
    cut = recipe_from_dict(
        {
            **recipe.to_dict(),
            "stages": [
                recipe.to_dict()["stages"][0],
                {**recipe.to_dict()["stages"][1], "steps": 2},
            ],
        }
    )
    partial = Trainer(cut, tmp_path / "partial", backbone_dir=tiny_backbone)
    partial.run(progress=False)
    resumed = Trainer(recipe, tmp_path / "resumed", backbone_dir=tiny_backbone)
    resumed.resume(tmp_path / "partial" / "last")
    resumed.state["step"], resumed.state["stage"] = 2, 1  # the cut recipe ended the stage there
    final = resumed.run(progress=False)
    a = load_checkpoint(straight, backbone_dir=tiny_backbone)
    b = load_checkpoint(final, backbone_dir=tiny_backbone)
    for (k, x), (_, y) in zip(trained_state(a).items(), trained_state(b).items(), strict=True):
        assert torch.equal(x, y), k
    assert _losses(tmp_path / "straight")[-2:] == _losses(tmp_path / "resumed")[-2:]


def test_text_match_adds_its_term_to_the_loss(
    tmp_path: Path, tiny_backbone: Path, make_recipe
) -> None:
    """The same first step of stage 2 (same weights, same batch) with and without the term:
    the loss grows by the term, which is positive while pairs are not yet aligned."""
    plain = train(
        load_recipe(make_recipe(steps=2)),
        tmp_path / "a",
        backbone_dir=tiny_backbone,
        progress=False,
    )
    match = load_recipe(make_recipe(steps=2, text_match=3.0))
    train(match, tmp_path / "b", backbone_dir=tiny_backbone, progress=False)
    a, b = _losses(plain.parent), _losses(tmp_path / "b")
    assert a[:2] == b[:2]  # stage 1 has no term
    assert b[2] > a[2] + 1e-3, (a, b)


def test_tampered_checkpoint_is_refused(tmp_path: Path, tiny_backbone: Path, make_recipe) -> None:
    recipe = load_recipe(make_recipe(steps=1))
    final = train(recipe, tmp_path / "run", backbone_dir=tiny_backbone, progress=False)
    blob = (final / "trained.safetensors").read_bytes()
    (final / "trained.safetensors").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(final, backbone_dir=tiny_backbone)


def test_missing_data_names_the_builder(tmp_path: Path, tiny_backbone: Path, make_recipe) -> None:
    recipe = load_recipe(make_recipe())
    recipe = recipe_from_dict({**recipe.to_dict(), "data": str(tmp_path / "nothing")})
    with pytest.raises(DataError, match="umr data emoji"):
        Trainer(recipe, tmp_path / "run", backbone_dir=tiny_backbone)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"stages": []}, "non-empty"),
        ({"oops": 1}, "unknown keys"),
        ({"precision": "fp8"}, "precision"),
        ({"stages": [{"name": "s", "steps": 1, "tasks": {"qx->cy": 1.0}}]}, "known tasks"),
        (
            {"stages": [{"name": "s", "steps": 1, "tasks": {"qt->ci": 1}, "backbone": "full"}]},
            "backbone",
        ),
        (
            {"stages": [{"name": "s", "steps": 1, "tasks": {"qt->ci": 1}, "distill_score": -1}]},
            "distill_score",
        ),
        (
            {"stages": [{"name": "s", "steps": 1, "tasks": {"qt->ci": 1}, "text_match": -1}]},
            "text_match",
        ),
        (
            {
                "stages": [
                    {
                        "name": "s",
                        "steps": 1,
                        "tasks": {"qt->ci": 1},
                        "distill_score": 1,
                        "fusion": "score",
                    }
                ]
            },
            "early fusion",
        ),
    ],
)
def test_bad_recipes_name_the_problem(patch: dict, message: str) -> None:
    base = {
        "name": "r",
        "model": "umr-tiny",
        "data": "d",
        "stages": [{"name": "s", "steps": 1, "tasks": {"qt->ci": 1.0}}],
    }
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict({**base, **patch})
