"""``--start-from``: a recipe taking over the stages it shares with another run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from umr.runtime.cli.main import main
from umr.training.branch import shared_stages
from umr.training.checkpoint import load_checkpoint, trained_state
from umr.training.model.registry import CONFIG_DIR
from umr.training.recipe import Recipe, recipe_from_dict
from umr.training.train import Trainer, train

from umr.errors import ConfigError

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Kit:
    """The tiny backbone and data, umr-tiny as a score-fusion model, and an early run."""

    writer: Any
    data: Path
    backbone: Path
    sf_model: Path
    early: Path = Path()

    def recipe(
        self, tmp: Path, model: str = "umr-tiny", score_first: bool = True, **top: Any
    ) -> Recipe:
        """The tiny two-stage recipe; its first stage on the score path, like the default's."""
        base = json.loads(self.writer(tmp / "r.json", self.data, steps=3).read_text())
        if score_first:
            base["stages"][0]["fusion"] = "score"
        return recipe_from_dict({**base, "model": model, **top})

    def train(self, recipe: Recipe, out: Path, start_from: Path | None = None) -> Path:
        return train(recipe, out, start_from=start_from, backbone_dir=self.backbone, progress=False)

    def trainer(self, recipe: Recipe, out: Path) -> Trainer:
        return Trainer(recipe, out, backbone_dir=self.backbone)

    def same(self, a: Path, b: Path) -> None:
        x = trained_state(load_checkpoint(a, backbone_dir=self.backbone))
        y = trained_state(load_checkpoint(b, backbone_dir=self.backbone))
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


@pytest.fixture(scope="module")
def kit(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_data: Path,
    tiny_backbone: Path,
    recipe_writer: Any,
) -> Kit:
    tmp = tmp_path_factory.mktemp("branch")
    cfg = json.loads((CONFIG_DIR / "umr-tiny.json").read_text())
    cfg = {**cfg, "name": "umr-tiny-sf", "fusion": "score"}  # like the real baseline's config
    cfg.pop("image_residual")
    (tmp / "umr-tiny-sf.json").write_text(json.dumps(cfg))
    k = Kit(recipe_writer, tiny_data, tiny_backbone, tmp / "umr-tiny-sf.json")
    k.train(k.recipe(tmp), tmp / "early")
    return Kit(recipe_writer, tiny_data, tiny_backbone, k.sf_model, tmp / "early")


def test_score_fusion_from_the_early_runs_stage_end_equals_a_straight_run(
    tmp_path: Path, kit: Kit
) -> None:
    assert sorted(p.name for p in (kit.early / "stages").iterdir()) == ["1-align"]
    sf = kit.recipe(tmp_path, str(kit.sf_model))
    straight = kit.train(sf, tmp_path / "straight")
    branched = kit.train(sf, tmp_path / "branched", kit.early / "stages" / "1-align")
    kit.same(straight, branched)
    lines = (tmp_path / "branched" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(x) for x in lines]
    assert {r["stage"] for r in logged if "loss" in r} == {"multi"}  # stage 1 was taken over


def test_a_last_checkpoint_at_a_stage_end_is_a_boundary_too(tmp_path: Path, kit: Kit) -> None:
    whole = kit.recipe(tmp_path).to_dict()
    kit.train(recipe_from_dict({**whole, "stages": whole["stages"][:1]}), tmp_path / "cut")
    sf = kit.recipe(tmp_path, str(kit.sf_model))
    a = kit.train(sf, tmp_path / "a", tmp_path / "cut" / "last")
    b = kit.train(sf, tmp_path / "b", kit.early / "stages" / "1-align")
    kit.same(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top": {"seed": 1}}, "seed=0"),
        ({"steps0": 2}, "stage 1 .'align'. differs"),
        ({"match0": 0.5}, "stage 1 .'align'. differs"),
        ({"model_patch": {"max_text_tokens": 12}}, "max_text_tokens"),
        ({"one_stage": True}, "nothing would be left"),
    ],
)
def test_a_recipe_that_would_compute_otherwise_is_refused(
    tmp_path: Path, kit: Kit, change: dict, message: str
) -> None:
    model = str(kit.sf_model)
    if "model_patch" in change:
        cfg = {**json.loads(kit.sf_model.read_text()), **change["model_patch"]}
        (tmp_path / "m.json").write_text(json.dumps(cfg))
        model = str(tmp_path / "m.json")
    d = kit.recipe(tmp_path, model, **change.get("top", {})).to_dict()
    if "steps0" in change:
        d["stages"][0]["steps"] = change["steps0"]
    if "match0" in change:
        d["stages"][0]["text_match"] = change["match0"]
    if change.get("one_stage"):
        d["stages"] = d["stages"][:1]
    trainer = kit.trainer(recipe_from_dict(d), tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        trainer.start_from(kit.early / "stages" / "1-align")


def test_fusion_variants_share_only_score_path_stages(tmp_path: Path, kit: Kit) -> None:
    kit.train(kit.recipe(tmp_path, score_first=False), tmp_path / "early")
    trainer = kit.trainer(kit.recipe(tmp_path, str(kit.sf_model), False), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"\['align'\] ran the model's own fusion"):
        trainer.start_from(tmp_path / "early" / "stages" / "1-align")


def test_a_mid_stage_checkpoint_is_refused(tmp_path: Path, kit: Kit) -> None:
    trainer = kit.trainer(kit.recipe(tmp_path), tmp_path / "run")
    trainer._save(tmp_path / "step0", None)  # stage 1, step 0: nothing finished
    with pytest.raises(ConfigError, match="not at the end of a stage"):
        trainer.start_from(tmp_path / "step0")


def test_cli_start_from_and_resume_exclude_each_other(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "default", "--out", str(tmp_path), "--resume", "a", "--start-from", "b"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_run_from_before_a_stage_key_existed_still_shares_its_stages(
    tmp_path: Path, kit: Kit
) -> None:
    """Runs written before ``text_match`` existed lack the key; its default (off) is what
    they computed, so they still count as the same stage."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(kit.early / "stages" / "1-align", old)
    stored = json.loads((old / "recipe.json").read_text())
    for st in stored["stages"]:
        del st["text_match"]
    (old / "recipe.json").write_text(json.dumps(stored))
    model = json.loads(kit.sf_model.read_text())
    assert shared_stages(old, kit.recipe(tmp_path, str(kit.sf_model)), model) == 1
