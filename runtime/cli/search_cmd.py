"""``umr search``: embed a query (text, image, or both) with a bundle and print the nearest
items of any index."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from umr.runtime.cli.index_cmd import BUILD_INFO

from umr.errors import ImageError, InputValueError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search an index with a text, image or text+image query",
        description="Embed each QUERY (text), or the one query given by --text, --image or "
        "both (a text+image pair, embedded as one vector by a multimodal bundle), and print "
        "the k nearest items of the index as a table (rank, score = cosine similarity, id, "
        "text/image), or as JSON with --json. "
        "--index is an index directory (hnswlib, exact, or the pointer `umr index build "
        "--backend milvus` leaves), a Milvus URI, or a milvus-lite FILE.db "
        "(token from $UMR_MILVUS_TOKEN).",
    )
    p.add_argument("queries", nargs="*", metavar="QUERY", help="query text(s)")
    p.add_argument("--text", default=None, help="a text query (with --image: a pair)")
    p.add_argument("--image", default=None, metavar="FILE", help="an image query file")
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle directory")
    p.add_argument(
        "--index", required=True, metavar="LOCATION", help="index directory, Milvus URI or .db"
    )
    p.add_argument("--collection", default=None, help="Milvus collection (with a URI; umr)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep hits whose metadata KEY equals VALUE (repeatable: all must hold). KEY may "
        "be dotted (metadata.lang: the JSONL metadata of `umr index build`); VALUE is typed "
        "when it reads as JSON true/false/number, else text (quote it: KEY='\"42\"')",
    )
    p.add_argument("-k", type=int, default=10, help="hits per query (default: 10)")
    p.add_argument("--ef", type=int, default=None, help="HNSW search breadth (default: stored)")
    p.add_argument("--instruction", default=None, help="task instruction prefixed to queries")
    p.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def parse_filters(pairs: list[str]) -> dict[str, Any] | None:
    """``["lang=en", "year=2020"]`` -> ``{"lang": "en", "year": 2020}`` (None if empty)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InputValueError(f"--filter {pair!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out[key] = value if isinstance(value, str | int | float | bool) else text
    return out or None


def _open(args: argparse.Namespace) -> Any:
    from umr.runtime.index import open_index
    from umr.runtime.index.backends import is_milvus_location

    if is_milvus_location(args.index):
        return open_index(args.index, collection=args.collection or "umr")
    if args.collection:
        raise InputValueError("--collection goes with a Milvus URI or .db --index")
    return open_index(args.index)


def _check_compatible(index, embedder, location: str) -> None:
    if index.dim != embedder.dim:
        raise InputValueError(
            f"index {location} holds {index.dim}-dim vectors but bundle "
            f"{embedder.manifest.name!r} embeds {embedder.dim}-dim; rebuild the index with it"
        )
    info_path = Path(location) / BUILD_INFO
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("bundle") != embedder.manifest.name:
            print(
                f"umr: warning: index was built with bundle {info.get('bundle')!r}, "
                f"searching with {embedder.manifest.name!r}",
                file=sys.stderr,
            )


def _row_text(hit) -> str:
    md = hit.metadata or {}
    if "image" in md:
        return " ".join(filter(None, [str(md.get("text", "")), f"[image {_short(md['image'])}]"]))
    return str(md.get("text", md)) if md else ""


def _short(path: str) -> str:
    """An image path, relative to the working directory when it lies under it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


Query = tuple[str | None, str | None]  # (text, image path); at least one is set


def _queries(args: argparse.Namespace) -> list[Query]:
    if args.text is None and args.image is None:
        if not args.queries:
            raise InputValueError("give a query: QUERY..., --text TEXT, --image FILE, or both")
        return [(q, None) for q in args.queries]
    if args.queries:
        raise InputValueError("give queries as QUERY... or with --text/--image, not both")
    if args.image is not None and not Path(args.image).is_file():
        raise InputValueError(f"--image {args.image}: file not found")
    return [(args.text, args.image)]


def _label(query: Query) -> str:
    text, image = query
    return " + ".join(filter(None, [text, image and f"[image {image}]"]))


def _embed(embedder, query: Query, instruction: str | None):
    text, image = query
    if image is None:
        return embedder.embed_text([text], instruction=instruction)
    try:  # an image alone is a pair with the text "" (so an instruction may condition it)
        return embedder.embed_fused([text or ""], [image], instruction=instruction)
    except ImageError as exc:
        raise ImageError(f"--image {image}: {str(exc).split(': ', 1)[-1]}") from None


def _json_query(query: Query) -> str | dict[str, str]:
    text, image = query
    if image is None:
        return str(text)
    return {"text": text, "image": image} if text is not None else {"image": image}


def _print_table(query: str, hits, timing: dict[str, float]) -> None:
    width = shutil.get_terminal_size((100, 20)).columns
    print(f"query: {query}")
    print(f"{'#':>3}  {'score':>6}  {'id':<18}  text")
    for rank, hit in enumerate(hits, start=1):
        room = max(20, width - 35)
        text = " ".join(_row_text(hit).split())
        text = text if len(text) <= room else text[: room - 1] + "…"
        print(f"{rank:>3}  {hit.score:6.3f}  {str(hit.id)[:18]:<18}  {text}")
    print(f"({timing['embed_ms']:.1f} ms embed, {timing['search_ms']:.2f} ms search)\n")


def run(args: argparse.Namespace) -> int:
    from umr.runtime import Embedder

    if args.k < 1:
        raise InputValueError(f"-k must be at least 1, got {args.k}")
    flt = parse_filters(args.filter)
    queries = _queries(args)
    embedder = Embedder.load(args.bundle, variant=args.variant, threads=args.threads)
    if any(image is not None for _, image in queries) and "image" not in embedder.modalities:
        raise InputValueError(
            f"--image needs a multimodal bundle; {embedder.manifest.name!r} embeds text only"
        )
    index = _open(args)
    _check_compatible(index, embedder, args.index)
    results = []
    for query in queries:
        t0 = time.perf_counter()
        vector = _embed(embedder, query, args.instruction)
        t1 = time.perf_counter()
        hits = index.search(vector, k=args.k, ef=args.ef, filter=flt)[0]
        t2 = time.perf_counter()
        timing = {"embed_ms": (t1 - t0) * 1e3, "search_ms": (t2 - t1) * 1e3}
        results.append((query, hits, timing))
    if args.json:
        out = [
            {
                "query": _json_query(q),
                "hits": [
                    {"rank": r, "id": h.id, "score": h.score, "metadata": h.metadata}
                    for r, h in enumerate(hits, start=1)
                ],
                "timing_ms": timing,
            }
            for q, hits, timing in results
        ]
        print(json.dumps(out if len(out) > 1 else out[0], ensure_ascii=False))
    else:
        for query, hits, timing in results:
            _print_table(_label(query), hits, timing)
    return 0
