"""Augmentations keep shape and alpha; recipes extend each other; the default model resolves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from umr.training.augment import AugmentConfig, augment
from umr.training.recipe import list_recipes, load_recipe

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
