"""Enforcing :class:`~umr.runtime.server.config.Limits`: body bytes, counts, text length.

The body limit is ASGI middleware that buffers the body itself and answers 413 as
soon as it grows past the limit, before any JSON parsing; the other checks run in the
handlers on parsed requests and raise a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, bad_request, error_response


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, whether or not the client
    sent a Content-Length (a chunked upload is counted as it arrives)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away mid-body
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = ApiError(
            413,
            "request_too_large",
            f"request body is larger than {self.max_bytes} bytes",
            None,
            Connection="close",  # the unread rest of the body must not be parsed as a request
        )
        await error_response(err)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for http.disconnect, as usual

    return replay


def check_count(n: int, limit: int, field: str) -> None:
    """At most ``limit`` entries in ``field``."""
    if n > limit:
        raise bad_request(f"{field}: {n} entries; this server accepts at most {limit}", field)


def check_text(text: str, limit: int, field: str) -> None:
    """At most ``limit`` characters, and encodable as UTF-8 (no lone surrogates)."""
    if len(text) > limit:
        raise bad_request(
            f"{field}: {len(text)} characters; this server accepts at most {limit}", field
        )
    check_unicode(text, field)


#: Nesting allowed inside metadata: saving, searching and answering all walk it, and a
#: deep enough object would exhaust the interpreter's recursion limit on the way out.
MAX_DEPTH = 32


def check_depth(value: Any, field: str, limit: int = MAX_DEPTH) -> None:
    """At most ``limit`` levels of nested objects/arrays inside ``value``."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                raise bad_request(f"{field}: nested more than {limit} levels deep", field)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def check_unicode(value: Any, field: str) -> None:
    """Every string inside ``value`` (nested dicts and lists too) must encode as UTF-8.

    JSON allows escaped lone surrogates (``"\\ud800"``); they would break saving the
    index and the tokenizer, so they are refused up front.
    """
    bad = _first_bad_string(value)
    if bad is not None:
        raise bad_request(f"{field}: contains a lone surrogate; text must be valid Unicode", field)


def _first_bad_string(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None
