"""Augmentations keep shape and alpha; recipes extend each other; the default model resolves."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image, ImageFilter
from umr.training.augment import AugmentConfig, augment, rank3
from umr.training.model.registry import CONFIG_DIR, get_config, list_models
from umr.training.recipe import RECIPE_DIR, list_recipes, load_recipe

from umr.errors import ConfigError


def _img() -> Image.Image:
    img = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    img.paste((200, 120, 60, 255), (4, 4, 12, 12))
    return img


def test_every_augmentation_keeps_size_and_mode() -> None:
    cfg = AugmentConfig(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = augment(_img(), cfg, rng, keep_colour=False)
        assert out.size == (16, 16) and out.mode == "RGBA"


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L"])
def test_rank3_is_pils_max_and_min_filter_bit_for_bit(mode: str) -> None:
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (1, 7), (5, 1), (2, 3), (16, 16), (33, 64)]:
        bands = len(Image.new(mode, (1, 1)).getbands())
        shape = (h, w) if bands == 1 else (h, w, bands)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        assert img.mode == mode
        for op, pil in (
            (np.maximum, ImageFilter.MaxFilter(3)),
            (np.minimum, ImageFilter.MinFilter(3)),
        ):
            ours = rank3(img, op)
            assert ours.mode == mode
            assert np.array_equal(np.asarray(ours), np.asarray(img.filter(pil))), (h, w, op)


def test_keep_colour_never_changes_hue() -> None:
    cfg = AugmentConfig(0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    out = augment(_img(), cfg, np.random.default_rng(0), keep_colour=True)
    assert np.array_equal(np.asarray(out), np.asarray(_img()))


def test_bad_augment_config() -> None:
    with pytest.raises(ConfigError, match="within"):
        AugmentConfig.from_dict({"p_blur": 2.0})


def test_builtin_recipes_load_and_extend() -> None:
    assert {"default", "score-fusion", "style-holdout-google"} <= set(list_recipes())
    base, sf = load_recipe("default"), load_recipe("score-fusion")
    assert sf.model == "umr-minilm-score-fusion" and sf.stages == base.stages
    assert load_recipe("style-holdout-google").exclude_styles == ("google",)
    with pytest.raises(ConfigError, match="built-in"):
        load_recipe("nope")


def test_experiment_recipes_are_the_default_vision_stage_cut_short() -> None:
    """EVAL.md's proxy runs: the default's ``vision`` stage at 250 steps on the score-fusion
    model, each changing one thing; not built-ins, so ``umr train`` takes them by path."""
    default = load_recipe("default")
    found, models = {}, {}
    for path in sorted((RECIPE_DIR / "experiments").glob("*.json")):
        recipe = load_recipe(path)
        assert len(recipe.stages) == 1 and recipe.stages[0].steps == 250
        models[path.stem] = recipe.model
        pairs = [(recipe.stages[0], default.stages[0]), (recipe.augment, default.augment)]
        found[path.stem] = {
            k: v
            for mine, base in pairs
            for k, v in asdict(mine).items()
            if k != "steps" and v != getattr(base, k)
        }
    assert found == {
        "vision250": {},
        "vision250-text-match5": {"text_match": 5.0},
        "vision250-lr4": {"lr": 0.004},
        "vision250-no-colour": {"p_colour": 0.0, "p_grayscale": 0.0},
        "vision250-deep": {},
    }
    deep = "training/configs/experiments/umr-minilm-score-fusion-deep.json"
    assert models == {**dict.fromkeys(found, "umr-minilm-score-fusion"), "vision250-deep": deep}
    assert not set(found) & set(list_recipes())


def test_the_deep_experiment_model_differs_from_the_baseline_in_the_transformer_only() -> None:
    sf = get_config("umr-minilm-score-fusion").to_dict()
    deep = get_config(str(CONFIG_DIR / "experiments" / "umr-minilm-score-fusion-deep.json"))
    got = deep.to_dict()
    assert got["vision"] == {**sf["vision"], "width": 256, "depth": 4}
    assert {k: v for k, v in got.items() if k not in ("vision", "name")} == {
        k: v for k, v in sf.items() if k not in ("vision", "name")
    }
    assert deep.name not in list_models()
