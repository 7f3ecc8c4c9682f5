"""``umr info BUNDLE``: what a bundle holds, and (with --verify) whether it is intact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from umr.bundle import BundleManifest, read_manifest, verify_files


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a bundle",
        description="Print a bundle's manifest: model, dim, pooling, max_seq_length, inputs, "
        "variants with their sizes and export-time parity figures.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory")
    p.add_argument("--verify", action="store_true", help="check the sha256 of every file")
    p.add_argument("--json", action="store_true", help="print umr.json as JSON")
    p.set_defaults(run=run)


def _size_mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "missing"


def _describe(root: Path, m: BundleManifest) -> list[str]:
    lines = [
        f"bundle         {root}",
        f"model          {m.name}  ({m.source.get('model_dir', m.source.get('model', '?'))})",
        f"modalities     {', '.join(m.modalities)}",
        f"dim            {m.dim}",
        f"pooling        {m.pooling}{' + L2 normalize' if m.normalize else ''} (in the graph)",
        f"max_seq_length {m.max_seq_length}",
        f"inputs         {', '.join(m.inputs)}",
        f"output         {m.output}",
        "variants",
    ]
    for v in m.variants.values():
        lines.append(f"  {v.name:6s} {v.file}  {v.dtype}  {_size_mb(root / v.file)}")
        for p in v.parity:
            gate = f", gate {p.gate}" if p.gate is not None else ""
            lines.append(
                f"         vs {p.reference}: min cos {p.min_cosine:.5f}, mean {p.mean_cosine:.5f}"
                f" ({p.n_texts} texts{gate})"
            )
        kept = v.details.get("fp32_nodes") if v.details else None
        if kept:
            lines.append(f"         kept in fp32: {', '.join(map(str, kept))}")
    lines.append(f"files          {len(m.files)} listed with sha256")
    return lines


def run(args: argparse.Namespace) -> int:
    root = Path(args.bundle)
    manifest = read_manifest(root)
    if args.verify:
        verify_files(root, manifest)
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    else:
        print("\n".join(_describe(root, manifest)))
        if args.verify:
            print("verified       every file matches its sha256")
    return 0
