"""``--start-from``: a recipe taking over the stages it shares with another run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from umr.runtime.cli.main import main
from umr.training.checkpoint import load_checkpoint, trained_state
from umr.training.model.registry import CONFIG_DIR
from umr.training.recipe import Recipe, recipe_from_dict
from umr.training.train import Trainer, train

from umr.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_sf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """umr-tiny as a score-fusion model (no skip gate), like the real baseline's config."""
    cfg = json.loads((CONFIG_DIR / "umr-tiny.json").read_text())
    cfg = {**cfg, "name": "umr-tiny-sf", "fusion": "score"}
    cfg.pop("image_residual")
    path = tmp_path_factory.mktemp("models") / "umr-tiny-sf.json"
    path.write_text(json.dumps(cfg))
    return path


def _recipe(
    writer: Any,
    tmp: Path,
    data: Path,
    *,
    model: str = "umr-tiny",
    score_first: bool = True,
    **top: Any,
) -> Recipe:
    """The tiny two-stage recipe; its first stage on the score path, like the default's."""
    base = json.loads(writer(tmp / "r.json", data, steps=3).read_text())
    if score_first:
        base["stages"][0]["fusion"] = "score"
    return recipe_from_dict({**base, "model": model, **top})


@pytest.fixture(scope="module")
def early_run(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_data: Path,
    tiny_backbone: Path,
    recipe_writer: Any,
) -> Path:
    """A finished early-fusion run of the recipe (its stage-end checkpoint is the branch)."""
    tmp = tmp_path_factory.mktemp("early")
    train(
        _recipe(recipe_writer, tmp, tiny_data),
        tmp / "run",
        backbone_dir=tiny_backbone,
        progress=False,
    )
    return tmp / "run"


def _same(a: Path, b: Path, backbone: Path) -> None:
    x = trained_state(load_checkpoint(a, backbone_dir=backbone))
    y = trained_state(load_checkpoint(b, backbone_dir=backbone))
    assert x.keys() == y.keys()
    for k in x:
        assert torch.equal(x[k], y[k]), k


def test_score_fusion_from_the_early_runs_stage_end_equals_a_straight_run(
    tmp_path: Path,
    recipe_writer: Any,
    tiny_data: Path,
    tiny_backbone: Path,
    tiny_sf: Path,
    early_run: Path,
) -> None:
    assert sorted(p.name for p in (early_run / "stages").iterdir()) == ["1-align"]
    sf = _recipe(recipe_writer, tmp_path, tiny_data, model=str(tiny_sf))
    straight = train(sf, tmp_path / "straight", backbone_dir=tiny_backbone, progress=False)
    branched = train(
        sf,
        tmp_path / "branched",
        start_from=early_run / "stages" / "1-align",
        backbone_dir=tiny_backbone,
        progress=False,
    )
    _same(straight, branched, tiny_backbone)
    lines = (tmp_path / "branched" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(x) for x in lines]
    assert {r["stage"] for r in logged if "loss" in r} == {"multi"}  # stage 1 was taken over


def test_a_last_checkpoint_at_a_stage_end_is_a_boundary_too(
    tmp_path: Path,
    recipe_writer: Any,
    tiny_data: Path,
    tiny_backbone: Path,
    tiny_sf: Path,
    early_run: Path,
) -> None:
    whole = _recipe(recipe_writer, tmp_path, tiny_data).to_dict()
    first = recipe_from_dict({**whole, "stages": whole["stages"][:1]})
    train(first, tmp_path / "cut", backbone_dir=tiny_backbone, progress=False)
    sf = _recipe(recipe_writer, tmp_path, tiny_data, model=str(tiny_sf))
    a = train(
        sf,
        tmp_path / "a",
        start_from=tmp_path / "cut" / "last",
        backbone_dir=tiny_backbone,
        progress=False,
    )
    b = train(
        sf,
        tmp_path / "b",
        start_from=early_run / "stages" / "1-align",
        backbone_dir=tiny_backbone,
        progress=False,
    )
    _same(a, b, tiny_backbone)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top": {"seed": 1}}, "seed=0"),
        ({"steps0": 2}, "stage 1 .'align'. differs"),
        ({"model_patch": {"max_text_tokens": 12}}, "max_text_tokens"),
        ({"one_stage": True}, "nothing would be left"),
    ],
)
def test_a_recipe_that_would_compute_otherwise_is_refused(
    tmp_path: Path,
    recipe_writer: Any,
    tiny_data: Path,
    tiny_backbone: Path,
    tiny_sf: Path,
    early_run: Path,
    change: dict,
    message: str,
) -> None:
    model = str(tiny_sf)
    if "model_patch" in change:
        cfg = {**json.loads(tiny_sf.read_text()), **change["model_patch"]}
        (tmp_path / "m.json").write_text(json.dumps(cfg))
        model = str(tmp_path / "m.json")
    d = _recipe(recipe_writer, tmp_path, tiny_data, model=model, **change.get("top", {})).to_dict()
    if "steps0" in change:
        d["stages"][0]["steps"] = change["steps0"]
    if change.get("one_stage"):
        d["stages"] = d["stages"][:1]
    trainer = Trainer(recipe_from_dict(d), tmp_path / "run", backbone_dir=tiny_backbone)
    with pytest.raises(ConfigError, match=message):
        trainer.start_from(early_run / "stages" / "1-align")


def test_fusion_variants_share_only_score_path_stages(
    tmp_path: Path, recipe_writer: Any, tiny_data: Path, tiny_backbone: Path, tiny_sf: Path
) -> None:
    early = _recipe(recipe_writer, tmp_path, tiny_data, score_first=False)
    train(early, tmp_path / "early", backbone_dir=tiny_backbone, progress=False)
    sf = _recipe(recipe_writer, tmp_path, tiny_data, model=str(tiny_sf), score_first=False)
    trainer = Trainer(sf, tmp_path / "run", backbone_dir=tiny_backbone)
    with pytest.raises(ConfigError, match=r"\['align'\] ran the model's own fusion"):
        trainer.start_from(tmp_path / "early" / "stages" / "1-align")


def test_a_mid_stage_checkpoint_is_refused(
    tmp_path: Path, recipe_writer: Any, tiny_data: Path, tiny_backbone: Path
) -> None:
    trainer = Trainer(
        _recipe(recipe_writer, tmp_path, tiny_data), tmp_path / "run", backbone_dir=tiny_backbone
    )
    trainer._save(tmp_path / "step0", None)  # stage 1, step 0: nothing finished
    with pytest.raises(ConfigError, match="not at the end of a stage"):
        trainer.start_from(tmp_path / "step0")


def test_cli_start_from_and_resume_exclude_each_other(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "default", "--out", str(tmp_path), "--resume", "a", "--start-from", "b"])
    assert "not allowed with argument" in capsys.readouterr().err
