"""Bearer-token checks: writes always need the token; reads need it off loopback.

A server started without a token refuses writes (403) instead of accepting them from
anyone who can reach the port: another local user or a browser page making requests
to localhost could otherwise rewrite the index.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError

bearer = HTTPBearer(
    auto_error=False,
    description="The server's token (--token or UMR_TOKEN). Required for writes, and for "
    "every endpoint when the server is bound to a non-loopback address.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


class Auth:
    """Builds the FastAPI dependencies for one server's token and binding."""

    def __init__(self, token: str | None, open_reads: bool) -> None:
        self._token = token.encode("utf-8") if token is not None else None
        self.open_reads = open_reads

    def _check(self, creds: HTTPAuthorizationCredentials | None) -> None:
        if creds is None:
            raise ApiError(
                401, "unauthorized", "missing bearer token", None, **{"WWW-Authenticate": "Bearer"}
            )
        given = creds.credentials.encode("utf-8", "surrogateescape")
        # constant-time: the comparison must not leak how many leading bytes matched
        if self._token is None or not hmac.compare_digest(given, self._token):
            raise ApiError(
                401,
                "unauthorized",
                "invalid bearer token",
                None,
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    def reader(self) -> Callable[..., Awaitable[None]]:
        """Dependency for read endpoints. On loopback it asks for nothing, so the spec
        lists no security requirement for reads there (it describes this server)."""

        # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
        # hand-off per request that cost ~20% of the event loop's time under load.
        async def open_read() -> None:
            return None

        async def require_read(creds: Credentials) -> None:
            self._check(creds)

        return open_read if self.open_reads else require_read

    def writer(self) -> Callable[[Credentials], Awaitable[None]]:
        """Dependency for endpoints that change the index."""

        async def require_write(creds: Credentials) -> None:
            if self._token is None:
                raise ApiError(
                    403,
                    "writes_disabled",
                    "this server has no token, so writes are disabled; restart it with "
                    "--token or UMR_TOKEN",
                )
            self._check(creds)

        return require_write
