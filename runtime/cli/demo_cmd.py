"""``umr demo``: with a multimodal bundle, search the emoji test split by name, by image and by
image + text (:mod:`umr.runtime.cli.demo_emoji`); with a text bundle, index the Python
language reference (shipped with Python) and query it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DEMO_QUERIES = (
    "how do I catch an exception and run cleanup code",
    "when are default argument values evaluated",
    "difference between is and == when comparing objects",
    "how do I format a float with two decimal places",
    "what happens when a generator function is called",
    "make a class usable in a with statement",
)
_LATENCY_ROUNDS = 30


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="search emoji by name, image and image+text (or, with a text bundle, the "
        "Python reference)",
        description="With a multimodal bundle: embed and index the Google emoji drawings of "
        "the emoji test split (--data, built by `umr data emoji`; cached under --workdir), "
        "then query them by name (text -> image), by the Twitter drawing (image -> image) and "
        "by a drawing plus 'medium-dark skin tone' (text+image -> image), printing the hits, "
        "recall over every such test query, and p50/p95/p99 latencies of embedding and search. "
        "With a text bundle: split the Python language reference topics that ship with "
        "Python (pydoc_data) into passages, index them, run a few questions, print the hits "
        "and a latency summary.",
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle directory")
    p.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    p.add_argument("--workdir", default="artifacts/demo", help="where the demo index is cached")
    p.add_argument(
        "--data",
        default="artifacts/data/emoji",
        metavar="DIR",
        help="emoji data set (multimodal bundles; default: %(default)s)",
    )
    p.add_argument("-k", type=int, default=3, help="hits shown per query (default: 3)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.set_defaults(run=run)


def _index_path(workdir: Path, embedder) -> Path:
    digest = embedder.manifest.files[embedder.manifest.variant(embedder.variant).file][:12]
    return workdir / f"pyref-{embedder.variant}-{digest}"


def _build_or_load(embedder, path: Path):
    from umr.runtime import Index
    from umr.runtime.cli.indexing import embed_into
    from umr.runtime.index import load as load_index
    from umr.runtime.input_files import Item

    from umr.corpus import python_reference_passages
    from umr.errors import IndexCorruptError

    if path.is_dir():
        try:
            index = load_index(path)
            print(f"loaded cached index {path} ({len(index)} passages)")
            return index
        except IndexCorruptError as exc:
            print(f"cached index unusable ({exc}); rebuilding", file=sys.stderr)
    passages = python_reference_passages()
    index = Index.create(embedder.dim, capacity=len(passages))
    t0 = time.perf_counter()
    embed_into(index, embedder, [Item(p.id, p.text) for p in passages], unit="passage")
    secs = time.perf_counter() - t0
    print(
        f"embedded and indexed {len(passages)} passages in {secs:.1f} s "
        f"({len(passages) / secs:.0f} passages/s)"
    )
    index.save(path)
    return index


def _show_hits(index, embedder, k: int) -> None:
    for query in DEMO_QUERIES:
        hits = index.search(embedder.embed_text([query]), k=k)[0]
        print(f"\n? {query}")
        for hit in hits:
            text = " ".join(str((hit.metadata or {}).get("text", "")).split())
            print(f"  {hit.score:.3f}  {hit.id:<28} {text[:90]}{'…' if len(text) > 90 else ''}")


def _percentiles(samples: list[float]) -> str:
    p50, p95, p99 = np.percentile(np.array(samples) * 1e3, [50, 95, 99])
    return f"p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   p99 {p99:6.2f} ms"


def _latency_summary(index, embedder) -> None:
    embed_s, search_s, total_s = [], [], []
    for _ in range(_LATENCY_ROUNDS):
        for query in DEMO_QUERIES:
            t0 = time.perf_counter()
            vector = embedder.embed_text([query])
            t1 = time.perf_counter()
            index.search(vector, k=10)
            t2 = time.perf_counter()
            embed_s.append(t1 - t0)
            search_s.append(t2 - t1)
            total_s.append(t2 - t0)
    print(
        f"\nlatency over {len(total_s)} queries (batch 1, {embedder.variant}, "
        f"{embedder.provider}, {embedder.threads} threads, {len(index)} passages):"
    )
    print(f"  embed          {_percentiles(embed_s)}")
    print(f"  search (k=10)  {_percentiles(search_s)}")
    print(f"  end to end     {_percentiles(total_s)}")


def run(args: argparse.Namespace) -> int:
    from umr.runtime import Embedder

    t0 = time.perf_counter()
    embedder = Embedder.load(args.bundle, variant=args.variant, threads=args.threads)
    print(
        f"loaded {embedder.manifest.name} ({args.variant}, dim {embedder.dim}, "
        f"{', '.join(embedder.modalities)}) on {embedder.provider} "
        f"in {(time.perf_counter() - t0) * 1e3:.0f} ms"
    )
    if "image" in embedder.modalities:
        from umr.runtime.cli import demo_emoji

        demo_emoji.run(embedder, Path(args.data), Path(args.workdir), args.k, _percentiles)
        return 0
    index = _build_or_load(embedder, _index_path(Path(args.workdir), embedder))
    _show_hits(index, embedder, args.k)
    _latency_summary(index, embedder)
    return 0
