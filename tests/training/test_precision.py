"""The precision a run computes in: bf16 only where the CPU runs it natively."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from umr.training import precision
from umr.training.recipe import load_recipe, recipe_from_dict
from umr.training.train import Trainer

_BASE = {
    "name": "r",
    "model": "umr-tiny",
    "data": "d",
    "stages": [{"name": "s", "steps": 1, "tasks": {"qt->ci": 1.0}}],
}


@pytest.mark.parametrize(("native", "want"), [(True, "bf16"), (False, "fp32")])
def test_auto_picks_bf16_only_where_native(
    monkeypatch: pytest.MonkeyPatch, native: bool, want: str
) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    assert precision.resolve_precision("auto") == want
    assert precision.resolve_precision("fp32") == "fp32"
    assert precision.resolve_precision("bf16") == "bf16"


def test_emulated_bf16_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert "about 10x slower" in (precision.emulation_warning("bf16") or "")
    assert precision.emulation_warning("fp32") is None
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.emulation_warning("bf16") is None


def test_native_check_answers_a_bool() -> None:
    assert isinstance(precision.native_bf16(), bool)


def test_recipes_default_to_auto() -> None:
    assert recipe_from_dict(_BASE).precision == "auto"
    assert load_recipe("default").precision == "auto"


def _set_precision(path: Path, value: str) -> Path:
    data = json.loads(path.read_text())
    data["precision"] = value
    path.write_text(json.dumps(data))
    return path


@pytest.mark.slow
def test_a_run_keeps_the_precision_it_began_with(
    tmp_path: Path, tiny_backbone: Path, make_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe(_set_precision(make_recipe(steps=1), "auto"))
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    first = Trainer(recipe, tmp_path / "a", backbone_dir=tiny_backbone)
    assert first.state["precision"] == "bf16"
    first.run(progress=False)
    events = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {"event": "precision", "asked": "auto", "used": "bf16"} in events
    # Resumed where bf16 is not native: "auto" would now say fp32, the run says bf16.
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    again = Trainer(recipe, tmp_path / "b", backbone_dir=tiny_backbone)
    assert again.state["precision"] == "fp32"
    again.resume(tmp_path / "a" / "last")
    assert again.state["precision"] == "bf16"
    with pytest.warns(RuntimeWarning, match="without native bf16"):
        again.run(progress=False)
