"""One error shape for every failure: ``{"error": {"type", "message", "field"}}``.

FastAPI's own validation errors (422, a list of pydantic details) are rewritten into
this shape with status 400, so clients parse one format. Messages never echo request
contents beyond the field's path, and are rendered ASCII-only: a message must not be
able to fail encoding (a lone surrogate in an id would otherwise turn a 400 into a 500).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from umr.errors import (
    DuplicateIdError,
    ImageError,
    InputTypeError,
    InputValueError,
    UnknownIdError,
)

log = logging.getLogger("umr.server")


class ApiError(Exception):
    """An error the server answers on purpose: HTTP status, type, message, field."""

    def __init__(
        self, status: int, type_: str, message: str, field: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field
        self.headers = headers or None


def bad_request(message: str, field: str | None = None) -> ApiError:
    """400 ``invalid_request``: the request is well-formed JSON but a value is wrong."""
    return ApiError(400, "invalid_request", message, field)


def from_umr_error(exc: Exception, field: str | None) -> ApiError:
    """Map a typed umr input error (raised by the embedder or index) to its status."""
    if isinstance(exc, DuplicateIdError):
        return ApiError(409, "duplicate_id", str(exc), field)
    if isinstance(exc, UnknownIdError):
        return ApiError(404, "unknown_id", str(exc), field)
    if isinstance(exc, ImageError):
        return ApiError(400, "invalid_image", str(exc), field)
    if isinstance(exc, InputTypeError | InputValueError):
        return ApiError(400, "invalid_request", str(exc), field)
    raise TypeError(f"not a client error: {type(exc).__name__}") from exc


def error_body(type_: str, message: str, field: str | None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"type": type_, "message": message, "field": field}}


class ErrorJSONResponse(JSONResponse):
    """JSONResponse that escapes non-ASCII, so no message can fail to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(err: ApiError) -> ErrorJSONResponse:
    """The response for ``err``."""
    return ErrorJSONResponse(
        error_body(err.type, err.message, err.field), status_code=err.status, headers=err.headers
    )


def field_path(loc: Sequence[Any]) -> str | None:
    """``("body", "input", 0, "text")`` -> ``"input[0].text"``; None for the whole body.

    Pydantic puts the union member it tried into the location (``"str"``,
    ``"list[union[...]]"``, ``"constrained-int"``); those parts are dropped.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_union_tag(str(part)):
            out += f".{part}" if out else str(part)
    return out or None


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}


def _is_union_tag(part: str) -> bool:
    return part in _TYPE_TAGS or "[" in part or part.startswith(("constrained-", "function-"))


def _depth(field: str | None) -> int:
    return 0 if field is None else 1 + field.count(".") + field.count("[")


def _validation_message(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """One message for pydantic's error list: the most specific field, and for a union
    the reason that is not just "wrong type" (or the types it would have accepted)."""
    if not errors:
        return "invalid request", None
    if any(e.get("type") == "json_invalid" for e in errors):
        return "request body is not valid JSON", None
    located = [(field_path(e.get("loc", ())), e) for e in errors]
    deepest = max(_depth(f) for f, _ in located)
    here = [e for f, e in located if _depth(f) == deepest]
    field = next(f for f, _ in located if _depth(f) == deepest)
    specific = [e for e in here if e.get("type") not in _EXPECTED]
    if specific:
        msg = str(specific[0].get("msg", "invalid value")).removeprefix("Value error, ")
    else:
        kinds = dict.fromkeys(_EXPECTED[str(e["type"])] for e in here)
        msg = "expected " + " or ".join(kinds)
    if field is None:
        return f"request body: {msg} (send a JSON object with Content-Type: application/json)", None
    return f"{field}: {msg}", field


async def _on_validation(request: Request, exc: RequestValidationError) -> ErrorJSONResponse:
    message, field = _validation_message(exc.errors())
    return error_response(ApiError(400, "invalid_request", message, field))


async def _on_api_error(request: Request, exc: ApiError) -> ErrorJSONResponse:
    return error_response(exc)


async def _on_http(request: Request, exc: StarletteHTTPException) -> ErrorJSONResponse:
    kinds = {
        400: "invalid_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
    }
    type_ = kinds.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:  # Starlette lists only the first route's methods
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    body = error_body(type_, str(exc.detail), None)
    return ErrorJSONResponse(body, status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (two routes share /v1/index/items)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _on_crash(request: Request, exc: Exception) -> ErrorJSONResponse:
    # A bug, never a client error. The type and traceback go to the log (no request
    # contents); the client gets no internals. Starlette re-raises after this handler,
    # so TestClient(raise_server_exceptions=True) surfaces the bug in tests.
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, "internal_error", "internal server error"))


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_crash)
