"""Connecting to Milvus and translating its errors (shared by the Milvus backend)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from umr.errors import BackendError

TOKEN_ENV = "UMR_MILVUS_TOKEN"
SCHEMES = ("http://", "https://", "tcp://", "unix:")


def normalize_uri(uri: str | os.PathLike[str]) -> str:
    """A server URI as given; a milvus-lite path made absolute (pointers outlive the cwd)."""
    text = os.fspath(uri)
    if text.startswith(SCHEMES):
        return text
    if not text.rstrip("/").endswith(".db"):
        raise BackendError(
            f"{text!r} is neither a Milvus URI (http://, https://, tcp://) "
            "nor a milvus-lite database path ending in .db"
        )
    return str(Path(text).resolve())


def connect(uri: str, token: str | None) -> Any:
    """A ``MilvusClient`` for ``uri`` (token: argument, else ``$UMR_MILVUS_TOKEN``)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise BackendError(
            f"the Milvus backend needs pymilvus ({exc}): pip install 'umr[milvus]'"
        ) from exc
    if not uri.startswith(SCHEMES) and importlib.util.find_spec("milvus_lite") is None:
        raise BackendError(
            f"{uri}: a local .db path needs milvus-lite, which is not installed: "
            "pip install 'umr[milvus]'"
        )
    with calls(f"cannot open Milvus at {uri}"):
        return MilvusClient(uri=uri, token=token or os.environ.get(TOKEN_ENV, ""))


@contextlib.contextmanager
def calls(what: str) -> Iterator[None]:
    """Turn pymilvus errors raised inside into BackendError prefixed with ``what``."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, BackendError) or not _is_milvus_error(exc):
            raise
        message = getattr(exc, "message", None) or str(exc)
        raise BackendError(f"{what}: {message}") from exc


def _is_milvus_error(exc: BaseException) -> bool:
    try:
        from pymilvus.exceptions import MilvusException
    except ImportError:
        return False
    return isinstance(exc, MilvusException | ConnectionError)
