"""``umr train RECIPE``: train the multimodal encoder (needs ``umr[train]``)."""

from __future__ import annotations

import argparse
import sys

_EPILOG = """\
Recipes are JSON files of progressive stages (see training/recipes/default.json);
a name picks a built-in recipe. The run directory gets:
  last/           a checkpoint every checkpoint_every steps (recipe key; --resume it)
  stages/N-NAME/  the model at the end of each stage but the last (--start-from it)
  final/          the finished model (safetensors + config.json + checksums)
  metrics.jsonl   loss, learning rate, temperature and step time, one JSON per line

Examples:
  umr data emoji --out artifacts/data/emoji
  umr train default --out runs/default
  umr train default --out runs/default --resume runs/default/last
  # the score-fusion baseline shares the default recipe's first stage (score path):
  umr train score-fusion --out runs/score-fusion --start-from runs/default/stages/1-vision
  umr eval --checkpoint runs/default/final --data artifacts/data/emoji
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the multimodal encoder from a recipe (needs umr[train])",
        description="Contrastive training of the universal encoder: InfoNCE with in-batch and "
        "hard negatives, modality-aware mining between stages, LoRA on the backbone.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="built-in recipe name or a recipe JSON file")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    p.add_argument("--data", metavar="DIR", help="dataset directory (overrides the recipe's)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CKPT", help="continue exactly from this checkpoint")
    start.add_argument(
        "--start-from",
        metavar="CKPT",
        help="skip the stages this recipe shares with another run, starting from that run's "
        "stage-end checkpoint (RUN/stages/N-NAME); refused, with the reason, unless those "
        "stages would compute the same here",
    )
    p.add_argument("--backbone", metavar="DIR", help="backbone directory (overrides the config)")
    p.add_argument(
        "--exclude-style",
        action="append",
        default=None,
        metavar="STYLE",
        help="hold a drawing style out of training (e.g. google); repeatable",
    )
    p.add_argument(
        "--publish",
        metavar="DIR",
        help="after training, copy the final model (no resume state) here, e.g. "
        "training/default_model",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    try:
        import torch
        from umr.training.recipe import load_recipe
        from umr.training.train import train
    except ImportError as exc:
        raise ImportError(f"umr train needs {exc.name}: pip install 'umr[train]'") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    if args.data:
        recipe = dataclasses.replace(recipe, data=args.data)
    if args.exclude_style:
        recipe = dataclasses.replace(recipe, exclude_styles=tuple(args.exclude_style))
    out = Path(args.out)
    if args.resume is None and (out / "final").exists():
        raise FileExistsError(
            f"{out} already holds a finished run; choose another --out or --resume"
        )
    final = train(
        recipe,
        out,
        resume=args.resume,
        start_from=args.start_from,
        backbone_dir=args.backbone,
        progress=not args.no_progress,
    )
    print(f"trained {recipe.name}: {final}", file=sys.stderr)
    if args.publish:
        from umr.training.checkpoint import publish

        print(f"published to {publish(final, args.publish)}", file=sys.stderr)
    return 0
