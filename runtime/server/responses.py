"""Rendering responses: vectors as floats or base64, hits with their text and metadata.

Responses are built as plain dicts and sent as JSON directly: validating a 384-float
vector through pydantic again on the way out would cost more than embedding a short
query. The shapes match the models in :mod:`.schemas` (the tests check it).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from starlette.responses import JSONResponse

from .index_service import split_record
from .schemas import ErrorResponse

#: Errors each kind of endpoint can answer, for the OpenAPI spec.
_DESCRIPTIONS = {
    400: "Malformed request, an image that does not decode or is over the limits "
    "(invalid_image), or an input kind the bundle cannot embed, such as an image on a "
    "text-only bundle (unsupported_modality): the error names the field.",
    401: "Missing or wrong bearer token.",
    403: "Writes are disabled: the server has no token.",
    404: "An id to delete is not in the index.",
    409: "An id to add already exists.",
    413: "Request body larger than the server's max_body_bytes.",
    503: "Overloaded (retry after the Retry-After header) or the index could not be saved.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route for these error statuses."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS[s]} for s in statuses}


def encode_vectors(vectors: np.ndarray, encoding_format: str) -> list[Any]:
    """Rows as float32 arrays (written as JSON numbers by :class:`VectorJSONResponse`),
    or as base64 strings of little-endian float32."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    return list(rows)


class VectorJSONResponse(JSONResponse):
    """JSON with float32 arrays written by orjson, each number the shortest decimal that
    reads back as the same float32.

    The standard library's encoder took about 0.3 ms per 384-float vector on the event
    loop's thread, more than the rest of a short query's request handling; orjson takes
    ~15 us, and the body is ~40% smaller (float32 needs ~9 digits, not float64's 17).
    Only for bodies we build from vectors and plain fields: orjson refuses integers over
    64 bits, which user metadata (search hits) may hold.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def embeddings_body(
    vectors: np.ndarray, encoding_format: str, model: str, tokens: int
) -> dict[str, Any]:
    """The ``/v1/embeddings`` response (OpenAI's shape)."""
    data = [
        {"object": "embedding", "index": i, "embedding": emb}
        for i, emb in enumerate(encode_vectors(vectors, encoding_format))
    ]
    return {"object": "list", "data": data, "model": model, "usage": usage(tokens)}


def search_body(hits: Sequence[Any], model: str, tokens: int) -> dict[str, Any]:
    """The ``/v1/search`` response."""
    out = []
    for hit in hits:
        text, metadata = split_record(hit.metadata)
        out.append({"id": hit.id, "score": float(hit.score), "text": text, "metadata": metadata})
    return {"hits": out, "model": model, "usage": usage(tokens)}


def usage(tokens: int) -> dict[str, int]:
    """OpenAI's usage block."""
    return {"prompt_tokens": tokens, "total_tokens": tokens}
