"""``umr data``: build training/evaluation datasets and check JSONL record files."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
Datasets for training and evaluating retrieval, as JSONL records (one query, its positive,
optional hard negatives per line; see docs/data-format.md).

  umr data emoji                   # build the emoji/icon dataset (needs npm, or --from)
  umr data validate FILE.jsonl     # check a record file and count its tasks
"""

_EMOJI_DESCRIPTION = """\
Build the emoji/icon retrieval dataset from three pinned npm packages:
  emoji-datasource-twitter@16.0.0, emoji-datasource-google@16.0.0  (64px emoji PNGs)
  @tabler/icons@3.51.0                                               (SVGs, rasterized to 64px)

Tarballs are fetched with 'npm pack' into --cache, where their sha256 is recorded and
checked on reuse. Offline, pass the tarballs with --from (one per package).

Output (--out): images/, train.jsonl, test.jsonl and manifest.json (sources, sha256,
seed, counts). Identities (an emoji with all its skin tones and styles; an icon with its
filled twin) are split with --seed: test identities never appear in train. Tasks:
  qt->ci        name -> image (train adds keyword -> image)
  qi->ct        image -> name
  qi->ci        twitter emoji -> google emoji (train adds google -> twitter)
  (qi,qt)->ci   emoji + "medium-dark skin tone" -> that variant; icon + "filled" -> filled icon
  qt->ct        keyword -> name
  qt->(ci,ct)   name -> image with its category
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="build datasets and validate JSONL record files",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    _add_emoji(data_sub)
    _add_validate(data_sub)


def _add_emoji(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emoji",
        help="build the emoji/icon dataset",
        description=_EMOJI_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts/data/emoji"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("~/.cache/umr/npm"),
        metavar="DIR",
        help="where npm tarballs and checksums.json are kept (default: %(default)s)",
    )
    p.add_argument(
        "--from",
        dest="local",
        type=Path,
        action="append",
        default=[],
        metavar="TARBALL",
        help="use this local .tgz instead of npm (repeat for each package; "
        "its package.json must name the pinned version)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    p.add_argument(
        "--test-emoji",
        type=int,
        default=600,
        metavar="N",
        help="emoji identities held out for test (default: %(default)s)",
    )
    p.add_argument(
        "--test-icons",
        type=int,
        default=600,
        metavar="N",
        help="icon identities held out for test (default: %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a JSONL record file",
        description="Read FILE with the record schema (task ids, modalities per task, "
        "non-empty strings, no unknown keys, image files present) and print the number of "
        "records per task. The first bad line is reported as FILE:LINE: field: problem.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="a .jsonl record file")
    p.add_argument("--no-images", action="store_true", help="do not check that image files exist")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.data_command == "validate":
        return _validate(args)
    return _emoji(args)


def _validate(args: argparse.Namespace) -> int:
    from umr.training.data.records import TASKS, read_records

    records = read_records(args.file, check_images=not args.no_images)
    counts = Counter(r.task for r in records)
    print(f"{args.file}: {len(records)} records, valid")
    for task in TASKS:
        if counts[task]:
            print(f"  {task:18s} {counts[task]:>8d}")
    return 0


def _emoji(args: argparse.Namespace) -> int:
    from umr.training.data.emoji_build import BuildOptions, build_emoji_dataset

    opts = BuildOptions(
        out=args.out,
        cache=args.cache,
        local=tuple(args.local),
        seed=args.seed,
        test_emoji=args.test_emoji,
        test_icons=args.test_icons,
        force=args.force,
        progress=not args.no_progress,
    )
    manifest = build_emoji_dataset(opts)
    print("\n".join(_summary(opts.out, manifest)))
    return 0


def _summary(out: Path, manifest: dict[str, Any]) -> list[str]:
    lines = [f"wrote {out} in {manifest['build_seconds']:.1f} s"]
    lines.append("images  " + ", ".join(f"{k} {v}" for k, v in manifest["images"].items()))
    for name, split in manifest["splits"].items():
        ids = split["identities"]
        lines.append(
            f"{name:5s}   {split['records']} records, "
            f"{ids['emoji']} emoji + {ids['icons']} icon identities"
        )
        lines.extend(f"  {task:18s} {n:>8d}" for task, n in split["tasks"].items())
    return lines
