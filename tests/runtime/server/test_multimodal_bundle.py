"""The server on a real (tiny) multimodal bundle: the Embedder's own vectors for images and
text+image pairs, through the micro-batcher, and a clear 400 on a text-only bundle."""

from __future__ import annotations

import base64
import io
import threading
import warnings

import numpy as np
import pytest
from umr.runtime import Embedder
from umr.runtime.server.config import BatchConfig, Limits, ServerConfig
from umr.runtime.server.launch import Sources, build_app

TOKEN = "mm-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGBA") -> bytes:
    from PIL import Image

    img = Image.new(mode, size, colour)
    img.paste((20, 200, 40, 255)[: len(colour)], (1, 1, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def url(payload: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(payload).decode()


IMAGES = [png((12, 9), (250, 0, 0, 0)), png((8, 8), (0, 0, 250, 255)), png((30, 5), (9, 9, 9))]


def client_for(bundle, tmp_path, **limits):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    config = ServerConfig(
        token=TOKEN,
        limits=Limits(**limits),
        batching=BatchConfig(max_wait_ms=20, workers=1),
    )
    app = build_app(Sources(str(bundle), str(tmp_path / "idx"), threads=1), config)
    return TestClient(app)


def vectors(response) -> np.ndarray:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)


def test_images_and_pairs_give_the_embedders_vectors(mm_bundle, tmp_path) -> None:
    ref = Embedder.load(mm_bundle.path, threads=1)
    inputs = [
        "plain text",
        {"image": url(IMAGES[0])},
        {"text": "the python list", "image": url(IMAGES[1])},
        {"image": url(IMAGES[2])},
    ]
    want = np.concatenate(
        [
            ref.embed_text(["plain text"]),
            ref.embed_image([IMAGES[0]]),
            ref.embed_fused(["the python list"], [IMAGES[1]]),
            ref.embed_image([IMAGES[2]]),
        ]
    )
    with client_for(mm_bundle.path, tmp_path) as client:
        health = client.get("/healthz").json()
        assert health["modalities"] == ["text", "image", "text+image"]
        got = vectors(client.post("/v1/embeddings", json={"input": inputs}))
        np.testing.assert_allclose(got, want, atol=1e-5)
        # with an instruction, a lone image is the pair ("", image) under that instruction
        r = client.post(
            "/v1/embeddings", json={"input": [{"image": url(IMAGES[0])}], "instruction": "a text"}
        )
        want_q = ref.embed_fused([""], [IMAGES[0]], instruction="a text")
        np.testing.assert_allclose(vectors(r), want_q, atol=1e-5)


def test_concurrent_image_requests_share_calls_and_keep_their_rows(mm_bundle, tmp_path) -> None:
    ref = Embedder.load(mm_bundle.path, threads=1)
    payloads = [png((6 + i, 7), (i * 20, 100, 200 - i * 20, 255)) for i in range(12)]
    want = ref.embed_fused(["a"] * 12, payloads)
    got: dict[int, np.ndarray] = {}
    with client_for(mm_bundle.path, tmp_path) as client:

        def send(i: int) -> None:
            body = {"input": [{"text": "a", "image": url(payloads[i])}]}
            got[i] = vectors(client.post("/v1/embeddings", json=body))[0]

        threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        metrics = client.get("/metrics").text
    np.testing.assert_allclose(np.stack([got[i] for i in range(12)]), want, atol=1e-5)
    assert "umr_batch_requests_bucket" in metrics
    pixels = sum(6 + i for i in range(12)) * 7
    assert f'umr_batch_pixels_total{{kind="fused"}} {float(pixels)}' in metrics


def test_index_and_search_by_image_and_pair(mm_bundle, tmp_path) -> None:
    items = [
        {"id": "red", "image": url(IMAGES[0]), "metadata": {"file": "red.png"}},
        {"id": "blue", "text": "the python list", "image": url(IMAGES[1])},
        {"id": "doc", "text": "a query for text"},
    ]
    with client_for(mm_bundle.path, tmp_path) as client:
        r = client.post("/v1/index/items", json={"items": items}, headers=AUTH)
        assert r.status_code == 200 and r.json()["count"] == 3, r.text
        hit = client.post("/v1/search", json={"image": url(IMAGES[0]), "k": 1}).json()["hits"][0]
        assert hit["id"] == "red" and hit["score"] > 0.9999
        assert hit["metadata"] == {"file": "red.png"} and hit["text"] is None
        query = {"text": "the python list", "image": url(IMAGES[1]), "k": 1}
        assert client.post("/v1/search", json=query).json()["hits"][0]["id"] == "blue"


def test_image_errors_name_the_field(mm_bundle, tmp_path) -> None:
    with client_for(mm_bundle.path, tmp_path, max_image_pixels=200) as client:
        body = {"input": ["ok", {"image": url(IMAGES[0])}, {"image": url(png((20, 20), (1,)))}]}
        r = client.post("/v1/embeddings", json=body)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["type"] == "invalid_image" and err["field"] == "input[2].image"
        assert "400 pixels" in err["message"]
        truncated = url(IMAGES[1][:30])
        r = client.post("/v1/search", json={"text": "x", "image": truncated})
        assert r.status_code == 400 and r.json()["error"]["field"] == "image"


@pytest.mark.parametrize(
    "body",
    [
        {"input": [{"image": url(IMAGES[0])}]},
        {"input": ["fine", {"text": "t", "image": url(IMAGES[0])}]},
    ],
)
def test_text_only_bundle_says_it_has_no_image_graph(tiny_bundle, tmp_path, body) -> None:
    with client_for(tiny_bundle.path, tmp_path) as client:
        r = client.post("/v1/embeddings", json=body)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["type"] == "unsupported_modality" and err["field"].endswith("].image")
        assert "has no image graph" in err["message"] and "'tiny'" in err["message"]
        assert client.get("/healthz").json()["modalities"] == ["text"]


@pytest.mark.bundle
def test_real_multimodal_bundle(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    bundle = os.environ.get("UMR_TEST_MM_BUNDLE")
    if not bundle:
        pytest.skip("UMR_TEST_MM_BUNDLE is not set (a multimodal bundle of the default model)")
    ref = Embedder.load(bundle, threads=1)
    pair = ("light skin tone", IMAGES[0])
    instruction = "Find this emoji or icon changed as the text describes."
    with client_for(bundle, tmp_path) as client:
        body = {"input": [{"text": pair[0], "image": url(pair[1])}], "instruction": instruction}
        got = vectors(client.post("/v1/embeddings", json=body))
        want = ref.embed_fused([pair[0]], [pair[1]], instruction=instruction)
        np.testing.assert_allclose(got, want, atol=1e-5)
        items = [{"id": i, "image": url(p)} for i, p in enumerate(IMAGES)]
        assert (
            client.post("/v1/index/items", json={"items": items}, headers=AUTH).status_code == 200
        )
        hit = client.post("/v1/search", json={"image": url(IMAGES[2]), "k": 1}).json()["hits"][0]
        assert hit["id"] == 2 and hit["score"] > 0.999
