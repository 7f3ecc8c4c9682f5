"""The ``umr eval`` report: the checkpoint's table and JSON, references beside it."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from umr.training.checkpoint import load_checkpoint
from umr.training.data.emoji_tasks import as_test_split
from umr.training.data.records import Record
from umr.training.model.build import build_model

from umr.errors import DataError

from .bundle_eval import compare_to_checkpoint, evaluate_bundle
from .run import evaluate_models, format_table, load_split
from .targets import check_targets


def eval_report(
    checkpoint: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str],
    split: str = "test",
    score_fusion: str | os.PathLike[str] | None = None,
    untrained: bool = True,
    only_style: str | None = None,
    only_source: str | None = None,
    identities: int | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    variant: str = "fp32",
) -> dict[str, Any]:
    """``{"tasks", "macro"}`` of the checkpoint (the issue's JSON shape) plus ``references``,
    ``sizes``, ``table`` (Markdown, all models side by side) and ``seconds``.
    ``identities``: only that many identities per source (:func:`sample_identities`), with
    the records the test split would hold for them (``as_test_split``). With
    ``bundle``, that bundle's ``variant`` (exported from the checkpoint) is evaluated in
    the same run and ``report["bundle"]`` compares it to the checkpoint."""
    t0 = time.perf_counter()
    records = load_split(data, split)
    if only_style:
        records = keep_style(records, only_style)
    if only_source:
        records = [r for r in records if r.meta.get("source") == only_source]
        if not records:
            raise DataError(f"no records come from the source {only_source!r}")
    if identities is not None:
        records = as_test_split(sample_identities(records, identities))
    model = load_checkpoint(checkpoint, backbone_dir=backbone_dir)
    models = {"umr": model}
    if untrained:
        models["untrained vision"] = build_model(model.cfg, backbone_dir=backbone_dir, seed=0)
    if score_fusion is not None:
        models["score fusion"] = load_checkpoint(score_fusion, backbone_dir=backbone_dir)
    results = evaluate_models(models, records)
    if bundle is not None:
        results[f"bundle {variant}"] = evaluate_bundle(bundle, records, variant=variant)
    main = results["umr"]
    report = {
        "checkpoint": str(checkpoint),
        "split": split,
        "only_style": only_style,
        "only_source": only_source,
        "identities": identities,
        "tasks": main["tasks"],
        "macro": main["macro"],
        "sizes": main["sizes"],
        "references": {
            k: {"tasks": v["tasks"], "macro": v["macro"]} for k, v in results.items() if k != "umr"
        },
        "table": format_table(results),
    }
    if bundle is not None:
        got = results[f"bundle {variant}"]
        report["bundle"] = {
            "path": str(bundle),
            "variant": variant,
            "tasks": got["tasks"],
            "macro": got["macro"],
            "vs_checkpoint": compare_to_checkpoint(got, main),
        }
    report["targets"] = check_targets(report)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def keep_style(records: list[Record], style: str) -> list[Record]:
    """Records whose images include ``style`` (style-transfer evaluation on one style)."""
    out = [r for r in records if style in r.meta.get("styles", ())]
    if not out:
        raise DataError(f"no records use the style {style!r}")
    return out


def sample_identities(records: list[Record], per_source: int, seed: int = 0) -> list[Record]:
    """The records of ``per_source`` identities per source (emoji, icons), drawn with a
    fixed seed; every record of a drawn identity is kept. With the training split this
    gives pools the size of the test split's on identities the model trained on, so the
    two recalls compare (the generalisation gap), once :func:`as_test_split` has dropped
    the kinds of record only training identities get."""
    if per_source < 1:
        raise DataError(
            f"sample_identities: per_source (umr eval --sample-identities) must be >= 1, "
            f"got {per_source}"
        )
    by_source: dict[str, set[str]] = {}
    for i, r in enumerate(records):
        ident = r.meta.get("identity")
        if ident is None:
            raise DataError(f"record {i} ({r.task}) has no meta.identity to sample by")
        by_source.setdefault(str(r.meta.get("source")), set()).add(str(ident))
    rng = np.random.default_rng(seed)
    keep: set[str] = set()
    for source in sorted(by_source):
        idents = sorted(by_source[source])
        take = rng.choice(len(idents), size=min(per_source, len(idents)), replace=False)
        keep.update(idents[int(j)] for j in take)
    return [r for r in records if str(r.meta.get("identity")) in keep]
