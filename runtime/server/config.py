"""Server settings: what one ``umr serve`` process enforces, as frozen dataclasses.

Every limit has a default sized for a small CPU box; the CLI exposes each one.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from umr.errors import ServerError


@dataclass(frozen=True)
class Limits:
    """Per-request limits; a request over any of them gets a 4xx naming the field.

    ``max_body_bytes`` bounds the raw HTTP body (413 past it); it is the only limit
    checked before JSON parsing, so it also bounds memory spent on a hostile request.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_text_chars: int = 32_768
    max_items: int = 256
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_k: int = 1000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServerError(f"limit {name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic micro-batching: how long and how much a batch may gather.

    A batch closes when ``max_wait_ms`` has passed since its first request arrived, or
    when adding the next request would exceed ``max_items`` inputs, ``max_tokens``
    tokens or ``max_pixels`` pixels (a single request over a budget still runs, alone),
    or past its share of the work: the inputs queued and running over ``workers``.
    ``workers`` batches run at once: on the CPU each embedder worker is single-threaded,
    so one batch in flight per core keeps every core busy. ``max_queue`` bounds the
    inputs waiting; past it requests get 503 instead of unbounded latency.
    """

    enabled: bool = True
    max_wait_ms: float = 2.0
    max_items: int = 64
    max_tokens: int = 8192
    max_pixels: int = 16 * 1024 * 1024
    workers: int = 2
    max_queue: int = 4096

    def __post_init__(self) -> None:
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
            raise ServerError(f"max_wait_ms must be a finite number, got {wait!r}")
        if wait < 0:
            raise ServerError(f"max_wait_ms must be >= 0, got {wait}")
        for name in ("max_items", "max_tokens", "max_pixels", "workers", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServerError(f"batching {name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs besides the embedder and the index."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    batching: BatchConfig = field(default_factory=BatchConfig)
    log_requests: bool = False

    def __post_init__(self) -> None:
        if self.token is not None and (not self.token or self.token != self.token.strip()):
            raise ServerError("token must be non-empty and have no surrounding whitespace")
        if not 0 <= self.port <= 65535:
            raise ServerError(f"port must be in 0..65535, got {self.port}")
        if not is_loopback(self.host) and self.token is None:
            # Refuse rather than warn: an open embedding+write API on a network is the
            # mistake this server exists to make hard.
            raise ServerError(
                f"refusing to bind {self.host!r} (not loopback) without a token; "
                "pass --token or set UMR_TOKEN"
            )

    @property
    def open_reads(self) -> bool:
        """Whether reads are allowed without a token (only when bound to loopback)."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1).

    Any other name counts as non-loopback: a hostname may resolve to anything.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
