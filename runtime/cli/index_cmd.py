"""``umr index build``: embed a text or JSONL file with a bundle and save a searchable index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from umr.runtime.cli.indexing import embed_into
from umr.runtime.input_files import FORMATS

from umr.atomic import atomic_write_json
from umr.errors import InputValueError

BUILD_INFO = "umr-build.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build vector indexes", description="Build vector indexes.")
    isub = p.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    b = isub.add_parser(
        "build",
        help="embed items and write an index",
        description="Embed every item of --input with the bundle and write a crash-safe index "
        "directory. Input: a text file (one item per line; the id is the line number) or JSONL "
        'records {"id": ..., "text": ..., "metadata": {...}} (only text is required). Every line '
        "is validated before anything is embedded.",
    )
    b.add_argument("--bundle", required=True, metavar="DIR", help="bundle directory")
    b.add_argument("--input", required=True, metavar="FILE", help="text lines or JSONL")
    b.add_argument("--out", required=True, metavar="DIR", help="index directory to write")
    b.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: auto)")
    b.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    b.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime threads (default: cores)"
    )
    b.add_argument("--batch-size", type=int, default=32, help="texts per model call (default: 32)")
    b.add_argument("--M", type=int, default=16, help="HNSW links per node (default: 16)")
    b.add_argument("--ef-construction", type=int, default=200, help="HNSW build breadth (200)")
    b.add_argument("--exact", action="store_true", help="brute-force index instead of HNSW")
    b.add_argument("--force", action="store_true", help="replace an existing index at --out")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    from umr.runtime import Embedder, ExactIndex, Index
    from umr.runtime.input_files import read_items

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputValueError(f"{out} already exists and is not empty; pass --force to replace it")
    items = read_items(args.input, args.format)
    embedder = Embedder.load(args.bundle, variant=args.variant, threads=args.threads)
    if args.exact:
        index = ExactIndex.create(embedder.dim, space="cosine", capacity=len(items))
    else:
        index = Index.create(
            embedder.dim,
            space="cosine",
            M=args.M,
            ef_construction=args.ef_construction,
            capacity=len(items),
        )
    embed_into(index, embedder, items, batch_size=args.batch_size, progress=not args.no_progress)
    index.save(out)
    atomic_write_json(
        out / BUILD_INFO,
        {
            "bundle": embedder.manifest.name,
            "variant": embedder.variant,
            "model_sha256": embedder.manifest.files[embedder.manifest.variant(args.variant).file],
            "dim": embedder.dim,
            "count": len(index),
            "input": str(Path(args.input).resolve()),
        },
    )
    kind = "exact" if args.exact else f"HNSW M={args.M} ef_construction={args.ef_construction}"
    print(f"indexed {len(index)} items from {args.input} into {out} ({kind})", file=sys.stderr)
    return 0
