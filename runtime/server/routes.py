"""The HTTP endpoints. Handlers only check, translate and delegate to the services."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .auth import Auth
from .config import Limits
from .embedding import EmbeddingService
from .errors import bad_request
from .index_service import IndexService, stored_record
from .inputs import Input
from .limits import check_count, check_depth, check_unicode
from .metrics import Metrics
from .responses import VectorJSONResponse, embeddings_body, error_responses, search_body
from .schemas import (
    AddItemsRequest,
    AddItemsResponse,
    DeleteItemsRequest,
    DeleteItemsResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    HealthResponse,
    IndexItem,
    InputItem,
    SearchRequest,
    SearchResponse,
)

#: Every path the server answers (metrics label endpoints by these, "other" otherwise).
PATHS = ("/v1/embeddings", "/v1/search", "/v1/index/items", "/healthz", "/metrics")


@dataclass(frozen=True)
class Services:
    """What the handlers work with."""

    embedding: EmbeddingService
    index: IndexService
    metrics: Metrics
    limits: Limits
    auth: Auth


def build_router(s: Services) -> APIRouter:
    """All routes, bound to ``s``."""
    router = APIRouter()
    read = [Depends(s.auth.reader())]
    write = [Depends(s.auth.writer())]
    limits = s.limits

    @router.post(
        "/v1/embeddings",
        response_model=EmbeddingResponse,
        responses=error_responses(400, 401, 413, 503),
        dependencies=read,
        tags=["embeddings"],
        summary="Embed texts, images and text+image pairs (OpenAI-compatible)",
    )
    async def embeddings(req: EmbeddingRequest) -> Response:
        _check_model(req, s.embedding)
        inputs = _embedding_inputs(req.input, limits)
        vectors, tokens = await s.embedding.embed(inputs, req.instruction)
        body = embeddings_body(vectors, req.encoding_format, s.embedding.name, tokens)
        return VectorJSONResponse(body)

    @router.post(
        "/v1/search",
        response_model=SearchResponse,
        responses=error_responses(400, 401, 413, 503),
        dependencies=read,
        tags=["index"],
        summary="Search the index with a text, an image, or both",
    )
    async def search(req: SearchRequest) -> Response:
        if req.k > limits.max_k:
            raise bad_request(f"k: {req.k} is over this server's max_k {limits.max_k}", "k")
        check_unicode(req.filter, "filter")
        query = Input(req.text, req.image, "text", "image")
        vectors, tokens = await s.embedding.embed([query], req.instruction)
        hits = await run_in_threadpool(s.index.search, vectors[0], req.k, req.filter)
        return JSONResponse(search_body(hits, s.embedding.name, tokens))

    @router.post(
        "/v1/index/items",
        response_model=AddItemsResponse,
        responses=error_responses(400, 401, 403, 409, 413, 503),
        dependencies=write,
        tags=["index"],
        summary="Embed items and add them to the index (saved before the reply)",
    )
    async def add_items(req: AddItemsRequest) -> AddItemsResponse:
        check_count(len(req.items), limits.max_items, "items")
        for i, item in enumerate(req.items):
            _check_item(item, i)
        ids = [item.id for item in req.items]
        s.index.check_new(ids)
        inputs = [
            Input(it.text, it.image, f"items[{i}].text", f"items[{i}].image")
            for i, it in enumerate(req.items)
        ]
        vectors, _ = await s.embedding.embed(inputs, None)
        records = [stored_record(it.text, it.metadata) for it in req.items]
        count = await run_in_threadpool(s.index.add, vectors, ids, records)
        return AddItemsResponse(added=len(ids), count=count)

    @router.delete(
        "/v1/index/items",
        response_model=DeleteItemsResponse,
        responses=error_responses(400, 401, 403, 404, 413, 503),
        dependencies=write,
        tags=["index"],
        summary="Remove items from the index (saved before the reply)",
    )
    async def delete_items(req: DeleteItemsRequest) -> DeleteItemsResponse:
        check_count(len(req.ids), limits.max_items, "ids")
        check_unicode(req.ids, "ids")
        if len(set(req.ids)) != len(req.ids):
            raise bad_request("ids: an id appears more than once", "ids")
        count = await run_in_threadpool(s.index.delete, list(req.ids))
        return DeleteItemsResponse(deleted=len(req.ids), count=count)

    @router.get(
        "/healthz",
        response_model=HealthResponse,
        responses=error_responses(401),
        dependencies=read,
        tags=["ops"],
        summary="Liveness and what is served",
    )
    async def healthz() -> HealthResponse:
        e = s.embedding
        return HealthResponse(
            model=e.name,
            dim=e.dim,
            modalities=e.modalities,
            index_items=len(s.index),
            batching=e.batching,
        )

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **error_responses(401),
        },
        dependencies=read,
        tags=["ops"],
        summary="Prometheus metrics (text exposition format)",
    )
    async def metrics() -> Response:
        return Response(s.metrics.render(), media_type=s.metrics.content_type)

    return router


def _check_model(req: EmbeddingRequest, embedding: EmbeddingService) -> None:
    name = embedding.name
    if req.model is not None and req.model != name and not req.model.endswith("/" + name):
        raise bad_request(f"model: this server serves {name!r}, not the one asked for", "model")
    if req.dimensions is not None and req.dimensions != embedding.dim:
        raise bad_request(
            f"dimensions: this model embeds {embedding.dim} dimensions, got {req.dimensions}",
            "dimensions",
        )


def _embedding_inputs(raw: str | list[str | InputItem], limits: Limits) -> list[Input]:
    if isinstance(raw, str):
        return [Input(raw, None, "input", "input")]
    if not raw:
        raise bad_request("input: must not be empty", "input")
    check_count(len(raw), limits.max_items, "input")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append(Input(item, None, f"input[{i}]", f"input[{i}]"))
        else:
            out.append(Input(item.text, item.image, f"input[{i}].text", f"input[{i}].image"))
    return out


def _check_item(item: IndexItem, i: int) -> None:
    check_unicode(item.id, f"items[{i}].id")
    if item.metadata is None:
        return
    field = f"items[{i}].metadata"
    check_depth(item.metadata, field)
    check_unicode(item.metadata, field)
    try:
        json.dumps(item.metadata, allow_nan=False)
    except ValueError:
        raise bad_request(f"{field}: NaN and Infinity are not JSON", field) from None
