"""`umr eval` of a bundle beside its checkpoint (a tiny model, trained and exported here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from umr.training.evaluation.bundle_eval import compare_to_checkpoint
from umr.training.evaluation.report import eval_report
from umr.training.recipe import load_recipe
from umr.training.train import train

pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx (pip install 'umr[export]')")


@pytest.mark.slow
def test_bundle_recall_matches_its_checkpoint(
    tmp_path: Path, tiny_backbone: Path, tiny_data: Path, make_recipe
) -> None:
    from umr.export.multimodal_export import export_multimodal

    final = train(load_recipe(make_recipe(steps=3)), tmp_path / "run", backbone_dir=tiny_backbone)
    bundle = tmp_path / "bundle"
    export_multimodal(
        bundle,
        final,
        variants=("fp32",),
        backbone_dir=tiny_backbone,
        parity_data=None,
        progress=False,
    )
    report = eval_report(
        final,
        data=tiny_data,
        untrained=False,
        backbone_dir=tiny_backbone,
        bundle=bundle,
    )
    got = report["bundle"]
    assert (
        set(got["tasks"])
        == set(report["tasks"])
        == {"(qi,qt)->ci", "qi->ci", "qi->ct", "qt->ci", "qt->ct"}
    )
    assert got["vs_checkpoint"]["passed"], got["vs_checkpoint"]
    assert "bundle fp32 R@1" in report["table"]


def test_comparison_names_the_worst_task_and_a_missing_one() -> None:
    ckpt = {"tasks": {"a": {"R@1": 0.5, "R@5": 0.9}, "b": {"R@1": 0.2}}}
    close = compare_to_checkpoint(
        {"tasks": {"a": {"R@1": 0.505, "R@5": 0.9}, "b": {"R@1": 0.2}}}, ckpt
    )
    assert close["passed"] and close["at"] == "a R@1" and close["max_abs_diff"] == 0.005
    far = compare_to_checkpoint({"tasks": {"a": {"R@1": 0.5, "R@5": 0.8}}}, ckpt)
    assert not far["passed"] and far["at"] == "b R@1" and far["max_abs_diff"] == float("inf")
