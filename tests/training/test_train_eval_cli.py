"""``umr train`` and ``umr eval`` end to end on the tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from umr.runtime.cli.main import main

pytestmark = pytest.mark.slow


def test_train_then_eval_json(tmp_path: Path, tiny_backbone: Path, make_recipe, capsys) -> None:
    recipe = make_recipe(steps=2)
    run = tmp_path / "run"
    args = ["train", str(recipe), "--out", str(run), "--backbone", str(tiny_backbone)]
    assert main([*args, "--no-progress", "--publish", str(tmp_path / "pub")]) == 0
    assert (run / "final" / "checkpoint.json").is_file() and (run / "metrics.jsonl").is_file()
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == [
        "checkpoint.json",
        "config.json",
        "recipe.json",
        "trained.safetensors",
    ]
    assert main([*args, "--no-progress"]) == 1  # a finished run is not overwritten
    capsys.readouterr()
    data = json.loads(recipe.read_text())["data"]
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "pub"),
            "--data",
            data,
            "--backbone",
            str(tiny_backbone),
            "--no-score-fusion",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["tasks"]) == {"qt->ci", "qi->ct", "qi->ci", "(qi,qt)->ci", "qt->ct"}
    assert set(report["macro"]) == {"R@1", "R@5", "R@10"}
    assert "untrained vision" in report["references"]
    assert all({"target", "reached", "bar", "met"} <= set(t) for t in report["targets"])
    args = ["eval", "--checkpoint", str(tmp_path / "pub"), "--data", data, "--no-untrained"]
    args += ["--backbone", str(tiny_backbone), "--no-score-fusion", "--json", "--split", "train"]
    assert main([*args, "--sample-identities", "4"]) == 0
    sample = json.loads(capsys.readouterr().out)
    assert sample["identities"] == 4 and sample["sizes"]["qi->ci"] == [4, 4]  # of 16


def test_eval_names_a_missing_split(tmp_path: Path, capsys) -> None:
    code = main(["eval", "--data", str(tmp_path), "--no-score-fusion"])
    assert code == 1
    assert "test.jsonl: no such split" in capsys.readouterr().err


def test_train_help_explains_the_run_directory(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "metrics.jsonl" in out and "--resume" in out and "--exclude-style" in out
    assert "--start-from" in out and "stages/N-NAME" in out
