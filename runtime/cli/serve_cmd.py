"""``umr serve``: the HTTP server (embeddings, search, index writes) over one bundle and index."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umr.runtime.server.config import ServerConfig

_DESCRIPTION = """\
Serve a bundle and an index over HTTP (needs umr[serve]):
  POST   /v1/embeddings    OpenAI-compatible embeddings (+ images, text+image pairs)
  POST   /v1/search        search by text, image or both; k; metadata filter
  POST   /v1/index/items   embed and add items (needs the token; saved before the reply)
  DELETE /v1/index/items   remove items by id (needs the token)
  GET    /healthz, /metrics (Prometheus), /docs and /openapi.json

Binds 127.0.0.1 by default. Writes need the bearer token (--token or UMR_TOKEN; the
environment variable keeps it out of `ps`); without one, writes are refused. A
non-loopback --host needs a token, which then guards every endpoint but the docs.
Images are base64 data URLs ('data:image/png;base64,...'; never fetched from http URLs),
alone or with a text as one text+image input; they need a multimodal bundle (a text-only
bundle answers 400 unsupported_modality) and are bounded by --max-image-bytes and
--max-image-pixels. Concurrent requests are micro-batched (see the --batch-* options,
--batch-max-pixels bounds the image pixels per model call; --no-batching to compare).
Request contents are never logged unless --log-requests (with -v)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve embeddings and search over HTTP",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle directory")
    p.add_argument(
        "--index",
        required=True,
        metavar="LOCATION",
        help="index directory (started empty if missing), Milvus URI or milvus-lite .db",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--token", default=None, help="bearer token (default: $UMR_TOKEN)")
    p.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (cores)")
    p.add_argument("--index-backend", default=None, help="index backend (default: guessed)")
    p.add_argument("--collection", default=None, help="Milvus collection name")
    p.add_argument("--log-requests", action="store_true", help="log request bodies (with -v)")
    _add_batching(p)
    _add_limits(p)
    p.set_defaults(run=run)


def _add_batching(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("micro-batching")
    g.add_argument("--no-batching", action="store_true", help="one model call per request")
    g.add_argument("--batch-wait-ms", type=float, default=2.0, help="max wait to fill a batch (2)")
    g.add_argument("--batch-max-items", type=int, default=64, help="inputs per batch (64)")
    g.add_argument("--batch-max-tokens", type=int, default=8192, help="tokens per batch (8192)")
    g.add_argument(
        "--batch-max-pixels", type=int, default=16 * 1024 * 1024, help="image pixels per batch"
    )
    g.add_argument("--batch-workers", type=int, default=None, help="batches in flight (cores)")
    g.add_argument("--max-queue", type=int, default=4096, help="inputs queued before 503 (4096)")


def _add_limits(p: argparse.ArgumentParser) -> None:
    from umr.runtime.server.config import Limits

    d = Limits()
    g = p.add_argument_group("request limits")
    g.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="(16 MiB)")
    g.add_argument("--max-text-chars", type=int, default=d.max_text_chars, help="per text")
    g.add_argument("--max-items", type=int, default=d.max_items, help="inputs per request")
    g.add_argument("--max-image-bytes", type=int, default=d.max_image_bytes, help="per image")
    g.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels, help="per image")
    g.add_argument("--max-k", type=int, default=d.max_k, help="hits per search")


def config_from_args(args: argparse.Namespace, workers: int) -> ServerConfig:
    """The :class:`ServerConfig` the options describe (ServerError if inconsistent)."""
    from umr.runtime.server.config import BatchConfig, Limits, ServerConfig
    from umr.runtime.server.launch import token_from_env

    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_text_chars=args.max_text_chars,
        max_items=args.max_items,
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        max_k=args.max_k,
    )
    batching = BatchConfig(
        enabled=not args.no_batching,
        max_wait_ms=args.batch_wait_ms,
        max_items=args.batch_max_items,
        max_tokens=args.batch_max_tokens,
        max_pixels=args.batch_max_pixels,
        workers=args.batch_workers or workers,
        max_queue=args.max_queue,
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=token_from_env(args.token),
        limits=limits,
        batching=batching,
        log_requests=args.log_requests,
    )


def run(args: argparse.Namespace) -> int:
    from umr.runtime.server.launch import Sources, build_app, serve_forever
    from umr.runtime.session import usable_cores

    # Checked before the bundle loads: a refused binding should fail in milliseconds.
    config = config_from_args(args, workers=args.threads or usable_cores())
    sources = Sources(
        bundle=args.bundle,
        index=args.index,
        variant=args.variant,
        threads=args.threads,
        backend=args.index_backend,
        collection=args.collection,
    )
    if args.log_requests:
        logging.getLogger("umr.server.access").setLevel(logging.INFO)
    app = build_app(sources, config)
    s = app.state.services
    writes = "writes need the token" if config.token else "writes disabled (no token)"
    print(
        f"umr serve: {s.embedding.name} ({', '.join(s.embedding.modalities)}) + "
        f"{len(s.index)} items from {args.index} on "
        f"http://{args.host}:{args.port} ({writes}; batching "
        f"{'on' if s.embedding.batching else 'off'})",
        file=sys.stderr,
    )
    serve_forever(app, config, log_level="info" if args.verbose else "warning")
    return 0
