"""Fixtures for the server tests: a deterministic fake embedder and app/client factories.

The fake implements ``embed_text``, ``embed_image`` and ``embed_fused`` (the multimodal
API of a later issue) so every input kind can be tested without a model; each vector is
a hash of what was embedded, so a test can recompute the vector it expects.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from umr.runtime import ExactIndex
from umr.runtime.server.app import create_app
from umr.runtime.server.config import BatchConfig, Limits, ServerConfig

from umr.errors import InputValueError
from umr.images import ImagePreprocess, preprocess

DIM = 8
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def unit_vector(*key: Any) -> np.ndarray:
    """A deterministic unit vector for ``key``."""
    seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


#: The fake's preprocessing: the runtime's own (umr.images), at a small size.
FAKE_PRE = ImagePreprocess(size=8)


def image_key(img: Any) -> str:
    """What identifies an image: its model input after the shared preprocessing, so
    a data URL and the image it was made from have the same key."""
    return hashlib.sha256(preprocess([img], FAKE_PRE).tobytes()).hexdigest()[:16]


class FakeEmbedder:
    """Deterministic embedder; ``"boom"`` as a text raises InputValueError like a bad input.

    Images go through :func:`umr.images.preprocess` like in the real Embedder (so its
    errors and modes are exercised); ``calls`` records ``(kind, n_inputs)`` per call,
    for batching tests.
    """

    def __init__(self, modalities: tuple[str, ...] = ("text", "image", "text+image")) -> None:
        self.dim = DIM
        self.manifest = types.SimpleNamespace(
            name="fake-model", modalities=modalities, max_seq_length=32
        )
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def _record(self, kind: str, n: int) -> None:
        with self._lock:
            self.calls.append((kind, n))

    def embed_text(self, texts, *, instruction=None, batch_size=32):  # type: ignore[no-untyped-def]
        self._record("text", len(texts))
        if "boom" in texts:
            raise InputValueError(f"texts[{texts.index('boom')}]: boom")
        return np.stack([unit_vector("t", instruction, t) for t in texts])

    def embed_image(self, images, *, batch_size=32):  # type: ignore[no-untyped-def]
        self._record("image", len(images))
        return np.stack([unit_vector("i", image_key(img)) for img in images])

    def embed_fused(self, texts, images, *, instruction=None, batch_size=32):  # type: ignore[no-untyped-def]
        self._record("fused", len(texts))
        pairs = zip(texts, images, strict=True)
        return np.stack([unit_vector("f", instruction, t, image_key(i)) for t, i in pairs])


class TextOnlyEmbedder:
    """Like the current bundles: text only, no image methods."""

    def __init__(self) -> None:
        self.dim = DIM
        self.manifest = types.SimpleNamespace(
            name="text-model", modalities=("text",), max_seq_length=32
        )

    def embed_text(self, texts, *, instruction=None, batch_size=32):  # type: ignore[no-untyped-def]
        return np.stack([unit_vector("t", instruction, t) for t in texts])


def png_data_url(width: int = 4, height: int = 3, color: tuple = (200, 10, 10)) -> str:
    """A small PNG as a data URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def make_client(tmp_path) -> Iterator[Callable[..., Any]]:
    """``make_client(embedder=None, index=None, location=..., token=TOKEN, **config)``.

    ``config`` keys: ``host``, ``log_requests``, ``limits`` (a dict for Limits),
    ``batching`` (a dict for BatchConfig). The index defaults to an empty ExactIndex saved
    under ``tmp_path/index``; the app's lifespan runs (the batcher is closed afterwards).
    """
    with warnings.catch_warnings():  # Starlette 1.x asks for the httpx2 fork; dev has httpx
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    opened: list[TestClient] = []

    def make(
        embedder: Any = None,
        *,
        index: Any = None,
        location: Any = "default",
        token: str | None = TOKEN,
        host: str = "127.0.0.1",
        limits: dict | None = None,
        batching: dict | None = None,
        log_requests: bool = False,
        raise_server_exceptions: bool = True,
    ) -> TestClient:
        embedder = embedder or FakeEmbedder()
        index = index if index is not None else ExactIndex.create(DIM)
        location = tmp_path / "index" if location == "default" else location
        config = ServerConfig(
            host=host,
            token=token,
            limits=Limits(**(limits or {})),
            batching=BatchConfig(**(batching or {})),
            log_requests=log_requests,
        )
        app = create_app(embedder, index, location=location, config=config)
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> Any:
    """A client on a FakeEmbedder (text + image) with an empty exact index and a token."""
    return make_client()


@pytest.fixture
def kit() -> types.SimpleNamespace:
    """The helpers above, for test modules (conftest modules cannot be imported by name
    under --import-mode=importlib)."""
    return types.SimpleNamespace(
        DIM=DIM,
        TOKEN=TOKEN,
        AUTH=AUTH,
        FakeEmbedder=FakeEmbedder,
        TextOnlyEmbedder=TextOnlyEmbedder,
        unit_vector=unit_vector,
        png_data_url=png_data_url,
        image_key=image_key,
    )
