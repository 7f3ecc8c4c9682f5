"""Evaluate a checkpoint on a split, beside the references the issue asks for.

References measured in the same run: the backbone with an untrained vision encoder
(what the architecture gives before training) and, when given, a score-fusion
(UniIR CLIP_SF) checkpoint trained on the same data and budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from umr.training.data.records import Record, Side, read_records
from umr.training.encode import autocast, encode_sides
from umr.training.image_cache import ImageCache
from umr.training.model.encoder import UmrEncoder
from umr.training.model.text_batch import TextBatcher

from umr.errors import DataError

from .recall import EncodeFn, evaluate


def model_encoder(
    model: UmrEncoder, records: Sequence[Record], precision: str = "fp32"
) -> EncodeFn:
    """An :data:`EncodeFn` running ``model`` (instructions on queries only)."""
    paths = {s.image for r in records for s in (r.query, r.positive, *r.negatives) if s.image}
    cache = ImageCache(paths, model.cfg.image)
    batcher = TextBatcher(model.backbone_dir / "tokenizer.json", model.cfg.max_text_tokens)

    def encode(sides: Sequence[Side], is_query: bool) -> np.ndarray:
        with autocast(precision):
            return encode_sides(model, sides, batcher, cache, use_instructions=is_query)

    return encode


def load_split(data: str | os.PathLike[str], split: str) -> list[Record]:
    path = Path(data) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such split; build the data with `umr data emoji --out {data}`")
    return read_records(path)


def evaluate_models(
    models: dict[str, UmrEncoder], records: Sequence[Record]
) -> dict[str, dict[str, Any]]:
    """Results per model name, each with the seconds it took."""
    out = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        res = evaluate(model_encoder(model, records), records)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        out[name] = res
    return out


def format_table(results: dict[str, dict[str, Any]], ks: Sequence[int] = (1, 5, 10)) -> str:
    """A Markdown table: one row per task (+ macro), R@k columns per model."""
    names = list(results)
    tasks = sorted({t for r in results.values() for t in r["tasks"]})
    head = ["task", *[f"{n} R@{k}" for n in names for k in ks]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in [*tasks, "macro"]:
        cells = [task]
        for n in names:
            row = results[n]["macro"] if task == "macro" else results[n]["tasks"].get(task, {})
            cells += [f"{row[f'R@{k}']:.3f}" if f"R@{k}" in row else "-" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
