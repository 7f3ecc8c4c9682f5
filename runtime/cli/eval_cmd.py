"""``umr eval``: Recall@1/5/10 per task on a split, beside reference systems."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="Recall@k per task of a checkpoint, beside baselines (needs umr[train])",
        description="Evaluate a trained checkpoint on a split of a JSONL dataset. Each task's "
        "candidate pool is every distinct positive of that task in the split; a query scores a "
        "hit at k if any right candidate is in its top k (M-BEIR). Reported beside it in the same "
        "run: the backbone with an untrained vision encoder, and a score-fusion baseline "
        "checkpoint if given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        default="default",
        metavar="DIR",
        help="a checkpoint (e.g. RUN/final); default: the model shipped with umr",
    )
    p.add_argument(
        "--data", default="artifacts/data/emoji", metavar="DIR", help="dataset directory"
    )
    p.add_argument("--split", default="test", help="split file name without .jsonl (default: test)")
    p.add_argument(
        "--score-fusion",
        default="score-fusion",
        metavar="DIR",
        help="the score-fusion baseline checkpoint (default: the one shipped with umr)",
    )
    p.add_argument("--no-score-fusion", action="store_true", help="skip the score-fusion baseline")
    p.add_argument(
        "--no-untrained", action="store_true", help="skip the untrained-vision reference"
    )
    p.add_argument(
        "--only-style",
        metavar="STYLE",
        help="evaluate only records drawn in this style (e.g. google), for style transfer",
    )
    p.add_argument(
        "--only-source",
        metavar="SOURCE",
        help="evaluate only records from this source (emoji or icons)",
    )
    p.add_argument(
        "--sample-identities",
        type=int,
        metavar="N",
        help="evaluate N identities per source, drawn with a fixed seed, with only the kinds "
        "of record the emoji test split holds (qt->ci by name, qi->ci Twitter -> Google, "
        "unambiguous qt->ct keywords); --split train --sample-identities 600 scores identities "
        "the model trained on with pools the size of the test split's: the generalisation gap",
    )
    p.add_argument(
        "--bundle",
        metavar="DIR",
        help="also evaluate this bundle (exported from the checkpoint) in the same run; "
        "exit 1 if any R@k differs from the checkpoint's by more than 0.01",
    )
    p.add_argument("--variant", default="fp32", help="the bundle's variant (default: fp32)")
    p.add_argument("--backbone", metavar="DIR", help="backbone directory (overrides the config)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", metavar="FILE", help="also write the JSON report here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from umr.training.evaluation.report import eval_report
    except ImportError as exc:
        raise ImportError(f"umr eval needs {exc.name}: pip install 'umr[train]'") from None
    report = eval_report(
        args.checkpoint,
        data=args.data,
        split=args.split,
        score_fusion=None if args.no_score_fusion else args.score_fusion,
        untrained=not args.no_untrained,
        only_style=args.only_style,
        only_source=args.only_source,
        identities=args.sample_identities,
        backbone_dir=args.backbone,
        bundle=args.bundle,
        variant=args.variant,
    )
    if args.out:
        from umr.atomic import atomic_write_json

        atomic_write_json(args.out, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from umr.training.evaluation.targets import format_targets

        print(report["table"])
        print()
        print(format_targets(report["targets"]))
    print(f"evaluated in {report['seconds']} s", file=sys.stderr)
    if "bundle" in report:
        cmp = report["bundle"]["vs_checkpoint"]
        verdict = "within" if cmp["passed"] else "OUTSIDE"
        print(
            f"bundle {report['bundle']['variant']} vs checkpoint: largest R@k difference "
            f"{cmp['max_abs_diff']} ({cmp['at']}), {verdict} the {cmp['gate']} gate",
            file=sys.stderr,
        )
        return 0 if cmp["passed"] else 1
    return 0
