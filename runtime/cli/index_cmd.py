"""``umr index build``: embed a text/JSONL file of texts, images and text+image pairs (or
load precomputed vectors) into an index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from umr.runtime.input_files import FORMATS

from umr.atomic import atomic_write_json
from umr.errors import InputValueError

BUILD_INFO = "umr-build.json"
BACKEND_NAMES = ("hnswlib", "exact", "milvus")  # umr.runtime.index.list_backends(), unimported


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build vector indexes", description="Build vector indexes.")
    isub = p.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    b = isub.add_parser(
        "build",
        help="embed items (or load vectors) and write an index",
        description="Embed every item of --input with the bundle, or load the vectors "
        "`umr embed-corpus` wrote (--from-vectors), into an index. Input: a text file (one "
        "item per line; the id is the line number) or JSONL records "
        '{"id": ..., "text": ..., "image": "PATH", "metadata": {...}}: text, image or both '
        "(a text+image pair, embedded as one vector; needs a multimodal bundle); image paths "
        "are relative to the JSONL file's folder; id defaults to the line number. Every line, "
        "and every image's header, is checked before anything is embedded. The index stores "
        '{"text": ..., "image": ..., "metadata": {...}} per item, so `umr search --filter '
        "metadata.KEY=V` selects on the user's metadata. Backends: hnswlib (default) and "
        "exact write a crash-safe directory at --out; milvus writes a collection (--uri, "
        "--collection; token from $UMR_MILVUS_TOKEN) and leaves a pointer at --out for "
        "`umr search`.",
    )
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE", help="text lines or JSONL to embed")
    source.add_argument(
        "--from-vectors", metavar="DIR", help="vectors directory from `umr embed-corpus`"
    )
    b.add_argument("--bundle", metavar="DIR", help="bundle directory (needed with --input)")
    b.add_argument("--out", required=True, metavar="DIR", help="index directory to write")
    b.add_argument("--backend", choices=BACKEND_NAMES, default=None, help="default: hnswlib")
    b.add_argument("--exact", action="store_true", help="same as --backend exact")
    b.add_argument("--uri", help="Milvus URI (http://host:19530) or milvus-lite FILE.db")
    b.add_argument("--collection", default="umr", help="Milvus collection (default: umr)")
    b.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: auto)")
    b.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    b.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime threads (default: cores)"
    )
    b.add_argument("--batch-size", type=int, default=32, help="items per model call (default: 32)")
    b.add_argument("--M", type=int, default=16, help="HNSW links per node (default: 16)")
    b.add_argument("--ef-construction", type=int, default=200, help="HNSW build breadth (200)")
    b.add_argument("--ef", type=int, default=None, help="default search breadth (default: 64)")
    b.add_argument(
        "--force", action="store_true", help="replace an existing index (or Milvus collection)"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(run=run_build)


def resolve_backend(args: argparse.Namespace) -> str:
    """The backend named by --backend / --exact, after checking they agree with --uri."""
    backend = args.backend or ("exact" if args.exact else "hnswlib")
    if args.exact and backend != "exact":
        raise InputValueError(f"--exact contradicts --backend {backend}")
    if backend == "milvus" and not args.uri:
        raise InputValueError("--backend milvus needs --uri (http://host:19530 or FILE.db)")
    if backend != "milvus" and args.uri:
        raise InputValueError(f"--uri is for --backend milvus, not {backend}")
    return backend


def run_build(args: argparse.Namespace) -> int:
    backend = resolve_backend(args)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputValueError(f"{out} already exists and is not empty; pass --force to replace it")
    if args.from_vectors:
        index, info = _build_from_vectors(args, backend)
    else:
        index, info = _build_from_text(args, backend)
    if backend != "milvus":
        (out / "milvus.json").unlink(missing_ok=True)  # a stale pointer would shadow the index
    index.save(out)
    atomic_write_json(out / BUILD_INFO, {**info, "backend": backend, "count": len(index)})
    print(
        f"indexed {len(index)} items into {_describe(index, backend, out, args)}", file=sys.stderr
    )
    return 0


def _build_from_text(args: argparse.Namespace, backend: str) -> tuple[Any, dict[str, Any]]:
    from umr.runtime import Embedder
    from umr.runtime.cli.indexing import check_images, check_modalities, embed_into
    from umr.runtime.input_files import read_items

    if not args.bundle:
        raise InputValueError("--input needs --bundle to embed the items")
    items = read_items(args.input, args.format, images=True)  # every line checked first
    embedder = Embedder.load(args.bundle, variant=args.variant, threads=args.threads)
    check_modalities(items, embedder, args.input)
    check_images(items, args.input, max_pixels=embedder.max_image_pixels, threads=embedder.threads)
    index = _create(args, backend, embedder.dim, len(items))
    embed_into(
        index,
        embedder,
        items,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        source=args.input,
    )
    var = embedder.manifest.variant(args.variant)
    info = {
        "bundle": embedder.manifest.name,
        "variant": embedder.variant,
        "model_sha256": embedder.manifest.files[var.file],
        "dim": embedder.dim,
        "input": str(Path(args.input).resolve()),
    }
    if var.image_file is not None and any(it.image is not None for it in items):
        info["image_model_sha256"] = embedder.manifest.files[var.image_file]
    return index, info


def _build_from_vectors(args: argparse.Namespace, backend: str) -> tuple[Any, dict[str, Any]]:
    from umr.runtime.cli.indexing import load_vectors_into
    from umr.runtime.corpus_embed.vectors import read_vectors, read_vectors_info

    meta = read_vectors_info(args.from_vectors)
    batches = read_vectors(args.from_vectors)  # verifies every file before yielding
    if args.bundle:
        _check_bundle_matches(args, meta)
    index = _create(args, backend, int(meta["dim"]), int(meta["count"]))
    load_vectors_into(index, batches, total=int(meta["count"]), progress=not args.no_progress)
    info = {key: meta[key] for key in ("bundle", "variant", "model_sha256") if key in meta}
    info.update(dim=int(meta["dim"]), vectors=str(Path(args.from_vectors).resolve()))
    return index, info


def _check_bundle_matches(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """With --from-vectors, --bundle only checks that the vectors came from that bundle."""
    from umr.runtime import Embedder

    embedder = Embedder.load(args.bundle, variant=args.variant, threads=1)
    if embedder.dim != meta["dim"] or meta.get("bundle") not in (None, embedder.manifest.name):
        raise InputValueError(
            f"{args.from_vectors} holds {meta['dim']}-dim vectors of bundle "
            f"{meta.get('bundle')!r}; --bundle {args.bundle} embeds {embedder.dim}-dim "
            f"with {embedder.manifest.name!r}"
        )


def _create(args: argparse.Namespace, backend: str, dim: int, count: int) -> Any:
    from umr.runtime.index import DEFAULT_EF, create_index

    settings: dict[str, Any] = {
        "space": "cosine",
        "M": args.M,
        "ef_construction": args.ef_construction,
        "ef": args.ef or DEFAULT_EF,
    }
    if backend == "milvus":
        settings.update(uri=args.uri, collection=args.collection, overwrite=args.force)
    else:
        settings.update(capacity=max(count, 1))
    return create_index(backend, dim, **settings)


def _describe(index: Any, backend: str, out: Path, args: argparse.Namespace) -> str:
    if backend == "exact":
        return f"{out} (exact)"
    hnsw = f"HNSW M={args.M} ef_construction={args.ef_construction}"
    if backend == "milvus":
        return f"Milvus collection {index.collection!r} at {index.uri} ({hnsw}; pointer: {out})"
    return f"{out} ({hnsw})"
