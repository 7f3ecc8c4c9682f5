"""``umr.bench.train_step`` on the tiny recipe (here for the training fixtures it needs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from umr.bench.train_step import measure


@pytest.mark.parametrize("stage", ["align", "multi"])
def test_it_times_every_setting_and_restores_the_model(
    make_recipe, tiny_backbone: Path, stage: str
) -> None:  # type: ignore[no-untyped-def]
    out = measure(
        str(make_recipe()), stage, rounds=2, steps=1, groups=(1, 3), backbone_dir=tiny_backbone
    )
    assert out["stage"] == stage and out["rounds"] == 2
    assert set(out["step_seconds"]) == {"1", "3"}
    assert all(len(v) == 2 and min(v) > 0 for v in out["step_seconds"].values())
    assert out["speedup_vs_first"]["1"] == 1.0


def test_an_unknown_stage_names_the_ones_there_are(make_recipe, tiny_backbone: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit, match=r"no stage 'nope'; it has \['align', 'multi'\]"):
        measure(str(make_recipe()), "nope", backbone_dir=tiny_backbone)
