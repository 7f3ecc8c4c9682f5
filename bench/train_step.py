"""Training step time with the backbone packed in length groups vs one padded batch.

Run as ``python -m umr.bench.train_step --stage multitask`` (needs ``umr[train]`` and the
recipe's data); prints one JSON line. Rounds alternate the two settings of
``UmrEncoder.length_groups`` on one trainer, so both see the same machine load; report
the medians and their ratio.

What it does not include, so the figures are per step and not per run: the text vectors
are random unit vectors (a step's cost does not depend on their values, and filling the
real ones takes minutes), and a stage that mines hard negatives runs without them (no
mining pass), so its batches have fewer candidates than in ``umr train``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(
    recipe_name: str,
    stage_name: str,
    *,
    rounds: int = 4,
    steps: int = 4,
    groups: tuple[int, ...] = (1, 4),
    backbone_dir: Path | None = None,
) -> dict[str, Any]:
    """Seconds per step of ``stage_name`` for each ``length_groups`` setting, interleaved."""
    import torch
    from umr.training import train as T
    from umr.training.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    stage = next((s for s in recipe.stages if s.name == stage_name), None)
    if stage is None:
        names = [s.name for s in recipe.stages]
        raise SystemExit(f"recipe {recipe.name!r} has no stage {stage_name!r}; it has {names}")
    with tempfile.TemporaryDirectory() as out:
        trainer = T.Trainer(recipe, Path(out), backbone_dir=backbone_dir)
        model = trainer.model
        trainer._enter_stage(stage)  # as umr train does, without its mining and text bank
        _random_text_vectors(trainer, torch, frozen=stage.backbone == "frozen")
        opt = T.make_optimizer(model, stage)
        trainer._step(stage, opt)  # warm-up: allocator, thread pool
        times: dict[int, list[float]] = {g: [] for g in groups}
        kept = model.length_groups
        try:
            for _ in range(rounds):
                for g in groups:
                    model.length_groups = g
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        trainer._step(stage, opt)
                    times[g].append((time.perf_counter() - t0) / steps)
        finally:
            model.length_groups = kept
    medians = {g: statistics.median(v) for g, v in times.items()}
    return {
        "recipe": recipe.name,
        "stage": stage.name,
        "batch_size": stage.batch_size,
        "precision": trainer.state["precision"],
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "steps_per_round": steps,
        "step_seconds": {str(g): v for g, v in times.items()},
        "median_step_seconds": {str(g): m for g, m in medians.items()},
        "speedup_vs_first": {str(g): medians[groups[0]] / m for g, m in medians.items()},
    }


def _random_text_vectors(trainer: Any, torch: Any, *, frozen: bool) -> None:
    """Fill the stage's text lookup and bank with random unit vectors (see the module doc)."""
    from umr.training.text_bank import text_candidates, text_sides

    dim = trainer.model.dim
    if frozen:  # as in umr train: a LoRA stage runs every text through the backbone
        sides = text_sides(trainer.records)
        vecs = torch.nn.functional.normalize(torch.randn(len(sides), dim), dim=-1)
        trainer.bank.lookup = {(s.text, s.instruction): vecs[i] for i, s in enumerate(sides)}
    cands = text_candidates(trainer.records)
    bank = torch.nn.functional.normalize(torch.randn(len(cands), dim), dim=-1)
    trainer.bank.set_bank([s.key for s in cands], bank)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m umr.bench.train_step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipe", default="default", help="a built-in recipe or a JSON path")
    p.add_argument("--stage", default="multitask", help="the recipe's stage to time")
    p.add_argument("--rounds", type=int, default=4, help="rounds per setting (interleaved)")
    p.add_argument("--steps", type=int, default=4, help="steps per round")
    p.add_argument("--groups", type=int, nargs="+", default=[1, 4], help="length_groups values")
    args = p.parse_args(argv)
    result = measure(
        args.recipe, args.stage, rounds=args.rounds, steps=args.steps, groups=tuple(args.groups)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
