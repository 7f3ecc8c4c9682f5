"""POST /v1/embeddings: OpenAI shape, encodings, images, text+image pairs, modality errors."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from umr.runtime.server.schemas import EmbeddingResponse, ErrorResponse

from umr.errors import ImageError


def vectors_of(body: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


def test_string_input_openai_shape(client, kit) -> None:
    r = client.post("/v1/embeddings", json={"input": "hello world", "model": "fake-model"})
    assert r.status_code == 200
    body = r.json()
    EmbeddingResponse.model_validate(body)
    assert body["object"] == "list" and body["model"] == "fake-model"
    assert body["data"][0]["object"] == "embedding" and body["data"][0]["index"] == 0
    np.testing.assert_allclose(vectors_of(body)[0], kit.unit_vector("t", None, "hello world"))
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_float_numbers_read_back_as_the_same_float32(client, kit) -> None:
    r = client.post("/v1/embeddings", json={"input": ["exact", "digits"]})
    assert r.headers["content-type"] == "application/json"
    want = np.stack([kit.unit_vector("t", None, t) for t in ("exact", "digits")])
    np.testing.assert_array_equal(vectors_of(r.json()), want)  # bit for bit, not close
    assert all(isinstance(x, float) for x in r.json()["data"][0]["embedding"])


def test_list_input_keeps_order_and_instruction(client, kit) -> None:
    texts = ["a", "bb", "ccc", "a"]
    r = client.post("/v1/embeddings", json={"input": texts, "instruction": "Find it"})
    got = vectors_of(r.json())
    want = np.stack([kit.unit_vector("t", "Find it", t) for t in texts])
    np.testing.assert_allclose(got, want)
    assert [d["index"] for d in r.json()["data"]] == [0, 1, 2, 3]


def test_base64_is_little_endian_float32(client, kit) -> None:
    r = client.post("/v1/embeddings", json={"input": ["x", "y"], "encoding_format": "base64"})
    assert r.status_code == 200
    EmbeddingResponse.model_validate(r.json())
    for d, text in zip(r.json()["data"], ["x", "y"], strict=True):
        vec = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(vec, kit.unit_vector("t", None, text))


def test_mixed_text_image_and_pairs_in_input_order(client, kit) -> None:
    from PIL import Image

    red, blue = kit.png_data_url(color=(255, 0, 0)), kit.png_data_url(5, 5, (0, 0, 255))
    inputs = ["plain", {"image": red}, {"text": "caption", "image": blue}, {"text": "only"}]
    r = client.post("/v1/embeddings", json={"input": inputs, "instruction": "q"})
    assert r.status_code == 200, r.text
    got = vectors_of(r.json())
    red_key = kit.image_key(Image.new("RGB", (4, 3), (255, 0, 0)))
    blue_key = kit.image_key(Image.new("RGB", (5, 5), (0, 0, 255)))
    want = [
        kit.unit_vector("t", "q", "plain"),
        kit.unit_vector("f", "q", "", red_key),  # with an instruction: a pair with ""
        kit.unit_vector("f", "q", "caption", blue_key),
        kit.unit_vector("t", "q", "only"),
    ]
    np.testing.assert_allclose(got, np.stack(want))


def test_images_without_instruction_use_embed_image(client, kit) -> None:
    from PIL import Image

    r = client.post("/v1/embeddings", json={"input": [{"image": kit.png_data_url()}]})
    key = kit.image_key(Image.new("RGB", (4, 3), (200, 10, 10)))
    np.testing.assert_allclose(vectors_of(r.json())[0], kit.unit_vector("i", key))
    assert r.json()["usage"]["prompt_tokens"] == 0


def test_embedder_image_errors_name_the_request_field(make_client, kit) -> None:
    # The embedder numbers images within its call; the client must see its own field.
    class Picky(kit.FakeEmbedder):
        def embed_image(self, images, *, batch_size=32):  # type: ignore[no-untyped-def]
            for i, img in enumerate(images):
                if img.size == (7, 7):
                    raise ImageError(f"image {i} (bytes): 7x7 is cursed")
            return super().embed_image(images, batch_size=batch_size)

    client = make_client(Picky())
    inputs = ["t", {"image": kit.png_data_url()}, "u", {"image": kit.png_data_url(7, 7)}]
    r = client.post("/v1/embeddings", json={"input": inputs})
    assert r.status_code == 400, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.type == "invalid_image" and err.field == "input[3].image"
    assert err.message == "input[3].image: 7x7 is cursed"


@pytest.mark.parametrize(
    ("item", "message"),
    [({"image": "IMG"}, "no image graph"), ({"text": "t", "image": "IMG"}, "embeds text only")],
)
def test_text_only_bundle_refuses_images_naming_the_field(make_client, kit, item, message) -> None:
    client = make_client(kit.TextOnlyEmbedder())
    item = {k: (kit.png_data_url() if v == "IMG" else v) for k, v in item.items()}
    r = client.post("/v1/embeddings", json={"input": ["ok", item]})
    assert r.status_code == 400
    err = ErrorResponse.model_validate(r.json()).error
    assert err.field == "input[1].image" and message in err.message
    assert err.type == "unsupported_modality"


def test_manifest_without_image_modality_refuses_images(make_client, kit) -> None:
    # The methods exist, but the bundle does not claim images: it must not be trusted.
    client = make_client(kit.FakeEmbedder(modalities=("text",)))
    r = client.post("/v1/embeddings", json={"input": [{"image": kit.png_data_url()}]})
    assert r.status_code == 400 and "text only" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": []}, "input"),
        ({"input": [1]}, "input[0]"),
        ({"input": [{"txt": "a"}]}, "input[0].txt"),
        ({"input": [{}]}, "input[0]"),
        ({"input": "a", "model": "other-model"}, "model"),
        ({"input": "a", "dimensions": 4}, "dimensions"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "unknown": 1}, "unknown"),
        ({}, "input"),
        ({"input": [{"image": "http://example.com/a.png"}]}, "input[0].image"),
        ({"input": [{"image": "data:image/png;base64,!!!"}]}, "input[0].image"),
    ],
)
def test_malformed_requests_name_the_field(client, body, field) -> None:
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == 400, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.field == field and field in err.message


def test_model_with_org_prefix_is_accepted(client) -> None:
    r = client.post("/v1/embeddings", json={"input": "a", "model": "someorg/fake-model"})
    assert r.status_code == 200


def test_embedder_input_error_is_a_400(client) -> None:
    r = client.post("/v1/embeddings", json={"input": ["fine", "boom"]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request"


def test_user_field_is_accepted_and_ignored(client) -> None:
    assert client.post("/v1/embeddings", json={"input": "a", "user": "u1"}).status_code == 200


def test_the_specs_examples_are_answered(client, make_client, kit) -> None:
    spec = client.get("/openapi.json").json()
    examples = spec["components"]["schemas"]["EmbeddingRequest"]["examples"]
    assert any("image" in str(e) for e in examples)
    text_only = make_client(kit.TextOnlyEmbedder())
    for example in examples:
        assert client.post("/v1/embeddings", json=example).status_code == 200
        r = text_only.post("/v1/embeddings", json=example)
        with_image = "image" in str(example)
        assert r.status_code == (400 if with_image else 200)
        if with_image:
            assert r.json()["error"]["type"] == "unsupported_modality"
