"""A tiny embeddings server for the load generators' tests."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture
def tiny_server(tiny_bundle, tmp_path):  # type: ignore[no-untyped-def]
    from umr.runtime.server.config import ServerConfig
    from umr.runtime.server.launch import Sources, ThreadedServer, build_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = ServerConfig(port=0)
        app = build_app(Sources(str(tiny_bundle.path), str(tmp_path / "idx"), threads=1), config)
        with ThreadedServer(app, config) as server:
            yield server
