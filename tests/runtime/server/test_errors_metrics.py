"""The one error shape, the catch-all 500, /healthz, /metrics and what gets logged."""

from __future__ import annotations

import logging

import pytest
from umr.runtime.server.errors import field_path
from umr.runtime.server.schemas import ErrorResponse, HealthResponse


class BuggyEmbedder:
    """An embedder with a bug (not an input error): must become a 500, never a 4xx."""

    def __init__(self, kit) -> None:  # type: ignore[no-untyped-def]
        inner = kit.TextOnlyEmbedder()
        self.dim, self.manifest = inner.dim, inner.manifest

    def embed_text(self, texts, *, instruction=None, batch_size=32):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug")


def test_a_bug_surfaces_in_tests(make_client, kit) -> None:
    client = make_client(BuggyEmbedder(kit))
    with pytest.raises(ZeroDivisionError):
        client.post("/v1/embeddings", json={"input": "a"})


def test_a_bug_is_a_500_in_the_error_shape_without_internals(make_client, kit, caplog) -> None:
    client = make_client(BuggyEmbedder(kit), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="umr.server"):
        r = client.post("/v1/embeddings", json={"input": "secret text"})
    assert r.status_code == 500
    assert ErrorResponse.model_validate(r.json()).error.type == "internal_error"
    assert "a bug" not in r.text and "ZeroDivision" not in r.text
    assert "secret text" not in caplog.text
    metrics = client.get("/metrics").text
    assert (
        'umr_http_errors_total{endpoint="/v1/embeddings",method="POST",status="500"} 1.0' in metrics
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "type_"),
    [("GET", "/nope", 404, "not_found"), ("GET", "/v1/embeddings", 405, "method_not_allowed")],
)
def test_routing_errors_use_the_shape(client, method, path, status, type_) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    assert ErrorResponse.model_validate(r.json()).error.type == type_


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "not valid JSON"), (b"\xff\xfe", ""), (b"[1, 2]", "JSON object")],
)
def test_unparseable_bodies_are_400(client, body, message) -> None:
    r = client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and message in r.json()["error"]["message"]
    ErrorResponse.model_validate(r.json())


def test_error_messages_are_ascii_escaped(client) -> None:
    r = client.post("/v1/embeddings", json={"input": "a", "model": "modèle-∑"})
    assert r.status_code == 400 and r.content.isascii()


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "input", 0, "text"), "input[0].text"),
        (
            ("body", "input", "list[union[str,InputItem]]", 2, "function-after[x]", "image"),
            "input[2].image",
        ),
        (("body", "items", 0, "id", "constrained-int"), "items[0].id"),
        (("body",), None),
        (("body", "filter", "lang", "str"), "filter.lang"),
    ],
)
def test_field_paths(loc, path) -> None:
    assert field_path(loc) == path


def test_healthz(client) -> None:
    body = HealthResponse.model_validate(client.get("/healthz").json())
    assert body.model == "fake-model" and body.dim == 8 and body.index_items == 0
    assert body.modalities == ["text", "image", "text+image"] and body.batching


def test_metrics_count_requests_errors_latency_and_batches(client) -> None:
    client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
    client.post("/v1/embeddings", json={"input": []})
    client.get("/no/such/path")
    client.request("BREW", "/v1/embeddings")
    text = client.get("/metrics").text
    assert (
        'umr_http_requests_total{endpoint="/v1/embeddings",method="POST",status="200"} 1.0' in text
    )
    assert 'umr_http_errors_total{endpoint="/v1/embeddings",method="POST",status="400"} 1.0' in text
    assert 'umr_http_requests_total{endpoint="other",method="GET",status="404"} 1.0' in text
    assert 'umr_http_request_duration_seconds_count{endpoint="/v1/embeddings"} 3.0' in text
    assert 'umr_batch_items_sum{kind="text"} 3.0' in text
    assert "umr_batch_queue_seconds_bucket" in text and "umr_queue_items 0.0" in text
    assert "/no/such/path" not in text and "BREW" not in text  # labels from fixed lists
    assert 'method="other",status="405"' in text


def test_request_contents_are_logged_only_when_asked(make_client, caplog) -> None:
    quiet = make_client()
    with caplog.at_level(logging.INFO, logger="umr.server"):
        quiet.post("/v1/embeddings", json={"input": "private words"})
        quiet.post("/v1/embeddings", json={"input": ["private words", 5]})
    assert "/v1/embeddings" in caplog.text and "private words" not in caplog.text
    caplog.clear()
    loud = make_client(log_requests=True)
    with caplog.at_level(logging.INFO, logger="umr.server"):
        loud.post("/v1/embeddings", json={"input": "private words"})
    assert "private words" in caplog.text
