"""A frozen stage reuses the text vectors an earlier frozen stage computed, exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from umr.training.model.build import add_lora
from umr.training.recipe import load_recipe
from umr.training.text_bank import TextBank
from umr.training.train import Trainer

pytestmark = pytest.mark.slow


def _trainer(tmp_path: Path, backbone: Path, make_recipe) -> Trainer:
    recipe = load_recipe(make_recipe(steps=1))
    score = dataclasses.replace(recipe.stages[0], fusion="score")
    recipe = dataclasses.replace(recipe, stages=(score, *recipe.stages))
    trainer = Trainer(recipe, tmp_path / "run", backbone_dir=backbone)
    trainer.out.mkdir()
    return trainer


def _prepare(trainer: Trainer, i: int) -> None:
    stage = trainer.recipe.stages[i]
    trainer.model.fusion_override = stage.fusion
    if stage.backbone == "lora":
        add_lora(trainer.model)
    trainer._prepare_bank(stage)


def _count_fills(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for name in ("fill_lookup", "fill_bank"):
        real = getattr(TextBank, name)

        def counted(self, *a, _real=real, _name=name, **k):  # type: ignore[no-untyped-def]
            calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(TextBank, name, counted)
    return calls


def test_frozen_stages_share_vectors_equal_to_a_fresh_fill(
    tmp_path: Path, tiny_backbone: Path, make_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(tmp_path, tiny_backbone, make_recipe)
    calls = _count_fills(monkeypatch)
    _prepare(trainer, 0)  # frozen, score fusion
    assert calls == ["fill_lookup", "fill_bank"]
    _prepare(trainer, 1)  # frozen, early fusion: nothing recomputed
    assert calls == ["fill_lookup", "fill_bank"]
    kept = trainer.bank
    trainer.bank = TextBank()
    _prepare(trainer, 1)  # what stage 1 would have computed itself
    # Bit for bit, though stage 0 ran the score path: resume must not tell them apart.
    assert kept.keys == trainer.bank.keys
    assert torch.equal(kept.vectors, trainer.bank.vectors)
    assert kept.lookup.keys() == trainer.bank.lookup.keys()
    for k, v in kept.lookup.items():
        assert torch.equal(v, trainer.bank.lookup[k]), k


def test_lora_stages_refill(
    tmp_path: Path, tiny_backbone: Path, make_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(tmp_path, tiny_backbone, make_recipe)
    _prepare(trainer, 0)
    calls = _count_fills(monkeypatch)
    _prepare(trainer, 2)  # LoRA: the backbone will move, so no lookup and a new bank
    assert calls == ["fill_bank"] and trainer.bank.lookup == {}
    _prepare(trainer, 1)  # frozen again, but LoRA is in the backbone now: recomputed
    assert calls == ["fill_bank", "fill_lookup", "fill_bank"]
