"""The FastAPI application: services, middleware, error handlers and routes wired together.

>>> app = create_app(Embedder.load("bundle"), open_index("idx"), location="idx")

Middleware, outermost first: metrics + access log (so refused bodies are counted too),
then the body-size limit, then FastAPI's routing. Validation errors are answered as
400 in the one error shape, so the spec lists 400 (not FastAPI's 422) for every route.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from umr import __version__
from umr.errors import ServerError

from .auth import Auth
from .config import ServerConfig
from .embedding import EmbeddingService
from .errors import install_handlers
from .index_service import IndexService
from .limits import BodySizeLimit
from .metrics import Metrics, ObserveRequests
from .routes import PATHS, Services, build_router
from .tokens import ApproxTokenCounter, TokenCounter

_DESCRIPTION = """\
Embeddings (OpenAI-compatible, plus images and text+image pairs), search and index writes
over one umr bundle and one index. Errors always have the shape
`{"error": {"type", "message", "field"}}`. Writes need the bearer token; when the server is
bound to a non-loopback address, every endpoint does."""


def create_app(
    embedder: Any,
    index: Any,
    *,
    location: str | os.PathLike[str] | None = None,
    config: ServerConfig | None = None,
    token_counter: TokenCounter | None = None,
) -> FastAPI:
    """The app serving ``embedder`` (an :class:`~umr.runtime.Embedder` or anything with
    ``manifest``, ``dim``, ``embed_text`` and optionally ``embed_image``/``embed_fused``)
    and ``index`` (any index backend), saving writes to ``location`` (None: not saved).

    ``token_counter`` defaults to an estimate; pass
    :class:`~umr.runtime.server.tokens.BundleTokenCounter` for exact ``usage``.
    """
    config = config or ServerConfig()
    if int(index.dim) != int(embedder.dim):
        raise ServerError(
            f"the index holds {index.dim}-dim vectors but bundle {embedder.manifest.name!r} "
            f"embeds {embedder.dim}-dim; serve an index built with this bundle"
        )
    _check_image_limit(embedder, config.limits.max_image_pixels)
    metrics = Metrics()
    counter = token_counter or ApproxTokenCounter(int(embedder.manifest.max_seq_length))
    embedding = EmbeddingService(
        embedder, counter, config.limits, config.batching, metrics.observe_batch
    )
    services = Services(
        embedding=embedding,
        index=IndexService(index, location),
        metrics=metrics,
        limits=config.limits,
        auth=Auth(config.token, config.open_reads),
    )
    metrics.gauge(
        "umr_queue_items", "Inputs waiting for the embedder.", lambda: embedding.queued_items
    )
    metrics.gauge("umr_index_items", "Items in the index.", lambda: len(services.index))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            embedding.close()

    app = FastAPI(title="umr", version=__version__, description=_DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    install_handlers(app)
    app.include_router(build_router(services))
    app.add_middleware(BodySizeLimit, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(
        ObserveRequests, metrics=metrics, endpoints=PATHS, log_requests=config.log_requests
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _check_image_limit(embedder: Any, server_limit: int) -> None:
    """The embedder must accept every image the server does (it checks pixels again)."""
    own = getattr(embedder, "max_image_pixels", None)
    if isinstance(own, int) and own < server_limit:
        raise ServerError(
            f"the embedder refuses images over {own} pixels but the server accepts up to "
            f"{server_limit}; lower --max-image-pixels or raise the embedder's max_image_pixels"
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec without the 422 responses this server never sends."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in spec.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        schemas = spec.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = spec
    return app.openapi_schema
