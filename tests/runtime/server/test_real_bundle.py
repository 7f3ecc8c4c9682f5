"""The server on the real exported bundle: same vectors as the Embedder, under concurrency."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from umr.runtime import Embedder
from umr.runtime.server.config import BatchConfig, ServerConfig
from umr.runtime.server.launch import Sources, build_app

from umr.corpus import python_reference_queries

TOKEN = "real-token"


@pytest.mark.bundle
def test_real_bundle_serves_the_embedders_vectors(real_bundle, tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    texts = [q.text for q in python_reference_queries()[:48]]
    reference = Embedder.load(real_bundle).embed_text(texts)
    config = ServerConfig(token=TOKEN, batching=BatchConfig(max_wait_ms=5, workers=2))
    app = build_app(Sources(str(real_bundle), str(tmp_path / "idx")), config)
    results: dict[int, np.ndarray] = {}
    with TestClient(app) as client:
        # 16 concurrent clients, one text per request: the batcher merges them
        def worker(start: int) -> None:
            for i in range(start, len(texts), 16):
                r = client.post("/v1/embeddings", json={"input": texts[i]})
                assert r.status_code == 200, r.text
                results[i] = np.array(r.json()["data"][0]["embedding"], dtype=np.float32)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = np.stack([results[i] for i in range(len(texts))])
        np.testing.assert_allclose(got, reference, atol=1e-5)
        assert "umr_batch_requests_bucket" in client.get("/metrics").text

        items = [{"id": i, "text": t} for i, t in enumerate(texts)]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            client.post("/v1/index/items", json={"items": items}, headers=auth).status_code == 200
        )
        hit = client.post("/v1/search", json={"text": texts[7], "k": 1}).json()["hits"][0]
        assert hit["id"] == 7 and hit["score"] > 0.999
        r = client.post("/v1/embeddings", json={"input": [{"text": "t", "image": "data:,"}]})
        assert r.status_code == 400 and "text only" in r.json()["error"]["message"]
