"""Request limits: body bytes (413, with and without Content-Length), text, items, images, k."""

from __future__ import annotations

import base64
import io

import pytest


def test_body_over_limit_is_413_before_parsing(make_client) -> None:
    client = make_client(limits={"max_body_bytes": 1000})
    r = client.post("/v1/embeddings", json={"input": "x" * 2000})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert client.post("/v1/embeddings", json={"input": "x" * 100}).status_code == 200


def test_chunked_body_without_length_is_counted(make_client) -> None:
    client = make_client(limits={"max_body_bytes": 1000})

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"input": "'
        for _ in range(30):
            yield b"x" * 100
        yield b'"}'

    r = client.post(
        "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_text_length_limit_names_the_item(make_client) -> None:
    client = make_client(limits={"max_text_chars": 10})
    r = client.post("/v1/embeddings", json={"input": ["short", "x" * 11]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "input[1]"
    r = client.post("/v1/embeddings", json={"input": "a", "instruction": "i" * 11})
    assert r.json()["error"]["field"] == "instruction"
    r = client.post("/v1/search", json={"text": "y" * 11})
    assert r.json()["error"]["field"] == "text"


def test_items_per_request_limit(make_client, kit) -> None:
    client = make_client(limits={"max_items": 3})
    r = client.post("/v1/embeddings", json={"input": ["a"] * 4})
    assert r.status_code == 400 and r.json()["error"]["field"] == "input"
    items = [{"id": i, "text": "a"} for i in range(4)]
    r = client.post("/v1/index/items", json={"items": items}, headers=kit.AUTH)
    assert r.status_code == 400 and r.json()["error"]["field"] == "items"
    r = client.request("DELETE", "/v1/index/items", json={"ids": [1, 2, 3, 4]}, headers=kit.AUTH)
    assert r.status_code == 400 and r.json()["error"]["field"] == "ids"


def test_image_pixel_limit_is_checked_from_the_header(make_client, kit) -> None:
    client = make_client(limits={"max_image_pixels": 100})
    r = client.post("/v1/embeddings", json={"input": [{"image": kit.png_data_url(11, 10)}]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["field"] == "input[0].image" and "110 pixels" in err["message"]
    ok = client.post("/v1/embeddings", json={"input": [{"image": kit.png_data_url(10, 10)}]})
    assert ok.status_code == 200


def test_image_byte_limit(make_client, kit) -> None:
    client = make_client(limits={"max_image_bytes": 50})
    r = client.post("/v1/embeddings", json={"input": [{"image": kit.png_data_url(64, 64)}]})
    assert r.status_code == 400 and "larger than 50 bytes" in r.json()["error"]["message"]


def test_decompression_bomb_is_refused_without_decoding(make_client) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # ~50 KB, 400 M pixels
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    client = make_client()
    r = client.post("/v1/embeddings", json={"input": [{"image": url}]})
    assert r.status_code == 400 and "pixels" in r.json()["error"]["message"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_limits_must_be_positive_ints(bad) -> None:
    from umr.runtime.server.config import Limits

    from umr.errors import ServerError

    with pytest.raises(ServerError, match="max_items"):
        Limits(max_items=bad)


def test_image_batches_stay_within_the_pixel_budget(make_client, kit) -> None:
    # The first call is held until the other single-image requests queue up; they must
    # then share calls, of at most two 10x10 images (the 200-pixel budget).
    import threading
    import time

    release = threading.Event()

    class Held(kit.FakeEmbedder):
        pixels: list[int] = []  # noqa: RUF012 - one list per test, read below

        def embed_image(self, images, *, batch_size=32):  # type: ignore[no-untyped-def]
            if not self.pixels:
                assert release.wait(10)
            self.pixels.append(sum(img.width * img.height for img in images))
            return super().embed_image(images, batch_size=batch_size)

    embedder = Held()
    client = make_client(embedder, batching={"max_pixels": 200, "workers": 1, "max_wait_ms": 50})
    body = {"input": [{"image": kit.png_data_url(10, 10)}]}
    codes: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(client.post("/v1/embeddings", json=body).status_code)
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    service = client.app.state.services.embedding
    deadline = time.monotonic() + 10
    while service.queued_items < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    assert codes == [200] * 6
    assert sum(embedder.pixels) == 600 and max(embedder.pixels) == 200
