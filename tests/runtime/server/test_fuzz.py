"""Property-based fuzzing: no input produces a 5xx, and every answer matches the spec.

Two generators: hypothesis with arbitrary and endpoint-shaped JSON (including image data
URLs holding random or truncated bytes and real images of every accepted format and
mode, on a multimodal and on a text-only embedder), and schemathesis driven by the
OpenAPI spec (positive and negative cases, the spec's examples, which carry images,
response-schema and status-code conformance, auth).
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from umr.runtime import ExactIndex
from umr.runtime.server.config import Limits, ServerConfig
from umr.runtime.server.schemas import (
    AddItemsResponse,
    DeleteItemsResponse,
    EmbeddingResponse,
    ErrorResponse,
    SearchResponse,
)

TOKEN = "fuzz-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ENDPOINTS = {
    ("POST", "/v1/embeddings"): EmbeddingResponse,
    ("POST", "/v1/search"): SearchResponse,
    ("POST", "/v1/index/items"): AddItemsResponse,
    ("DELETE", "/v1/index/items"): DeleteItemsResponse,
}
# Small limits so the fuzzer reaches them; the fake embedder is the multimodal one.
LIMITS = Limits(max_body_bytes=64_000, max_text_chars=200, max_items=8, max_image_pixels=4096)


def _png(size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


_VALID_PNG = _png((3, 3))
_MODES = ("RGB", "RGBA", "L", "LA", "P", "1", "I", "CMYK")
_SAVES = {"PNG": _MODES[:6], "GIF": ("P", "L"), "JPEG": ("RGB", "L", "CMYK"), "BMP": ("RGB", "L")}
_SAVES["WEBP"] = ("RGB", "RGBA")


@st.composite
def encoded_images(draw) -> bytes:  # type: ignore[no-untyped-def]
    """A real image: any listed format and mode, 1..90 px a side (the fuzz limit is
    4096 pixels, so some are over it), sometimes animated or EXIF-rotated."""
    from PIL import Image

    fmt = draw(st.sampled_from(sorted(_SAVES)))
    mode = draw(st.sampled_from(_SAVES[fmt]))
    size = (draw(st.integers(1, 90)), draw(st.integers(1, 90)))
    colour = draw(st.integers(0, 255))
    img = Image.new("RGBA", size, (colour, 255 - colour, 7, draw(st.sampled_from([0, 128, 255]))))
    img = img.convert(mode)
    buf = io.BytesIO()
    options: dict = {}
    if fmt == "GIF" and draw(st.booleans()):
        options = {"save_all": True, "append_images": [img.copy()], "duration": 10}
    if fmt == "JPEG" and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # orientation, including invalid values
        options = {"exif": exif.tobytes()}
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


_image_bytes = st.one_of(
    st.just(_VALID_PNG),
    encoded_images(),
    st.binary(max_size=64),
    st.integers(1, len(_VALID_PNG) - 1).map(lambda n: _VALID_PNG[:n]),  # truncated
    st.sampled_from([_png((100, 100)), b"GIF89a" + bytes(20), b"BM" + bytes(30)]),
)
_prefixes = st.sampled_from(
    [
        "data:image/png;base64,",
        "data:image/jpeg;base64,",
        "data:;base64,",
        "data:image/x;a=b;base64,",
    ]
)
images = st.one_of(
    st.tuples(_prefixes, _image_bytes).map(lambda p: p[0] + base64.b64encode(p[1]).decode()),
    st.text(max_size=30),
    st.sampled_from(
        ["data:image/png;base64,", "http://x/y.png", "data:,", "data:image/png;base64,="]
    ),
)
texts = st.one_of(st.text(max_size=40), st.text(alphabet="ab \ud800", max_size=5))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(st.integers(), st.text(max_size=6), json_values)
content = st.fixed_dictionaries({}, optional={"text": texts, "image": images})
bodies = {
    "/v1/embeddings": st.fixed_dictionaries(
        {"input": st.one_of(texts, st.lists(st.one_of(texts, content, json_values), max_size=10))},
        optional={
            "model": st.sampled_from(["fake-model", "other", ""]),
            "encoding_format": st.sampled_from(["float", "base64", "x"]),
            "instruction": texts,
            "dimensions": st.integers(-1, 10),
        },
    ),
    "/v1/search": content.flatmap(
        lambda c: st.fixed_dictionaries(
            {k: st.just(v) for k, v in c.items()},
            optional={
                "k": st.one_of(st.integers(-2, 20), json_values),
                "filter": st.one_of(st.dictionaries(st.text(max_size=6), scalars), json_values),
                "instruction": texts,
            },
        )
    ),
    "/v1/index/items": st.fixed_dictionaries(
        {
            "items": st.lists(
                content.flatmap(
                    lambda c: st.fixed_dictionaries(
                        {"id": ids, **{k: st.just(v) for k, v in c.items()}},
                        optional={"metadata": json_values},
                    )
                ),
                max_size=10,
            )
        }
    ),
}


def _client(location: Path, *, text_only: bool = False):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():  # Starlette 1.x asks for the httpx2 fork
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    return TestClient(build_app(location, host="127.0.0.1", text_only=text_only))


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):  # type: ignore[no-untyped-def]
    with _client(tmp_path_factory.mktemp("fuzz")) as client:
        yield client


@pytest.fixture(scope="module")
def text_only_client(tmp_path_factory):  # type: ignore[no-untyped-def]
    with _client(tmp_path_factory.mktemp("fuzz-text"), text_only=True) as client:
        yield client


def build_app(location: Path | None, host: str, text_only: bool = False):  # type: ignore[no-untyped-def]
    from umr.runtime.server import app as app_module

    fake = _fake_embedder(text_only)
    config = ServerConfig(host=host, token=TOKEN, limits=LIMITS)
    return app_module.create_app(fake, ExactIndex.create(8), location=location, config=config)


def _fake_embedder(text_only: bool = False):  # type: ignore[no-untyped-def]
    # The conftest fakes, rebuilt here because module-scoped fixtures cannot use ``kit``.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "server_conftest", Path(__file__).with_name("conftest.py")
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.TextOnlyEmbedder() if text_only else module.FakeEmbedder()


def send(client, method: str, path: str, body: object):  # type: ignore[no-untyped-def]
    """Send ``body`` as JSON the way a client in any language could: lone surrogates as
    ``\\ud800`` escapes, NaN as a bare literal (Python's json accepts both)."""
    headers = {**HEADERS, "content-type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode("ascii")
    return client.request(method, path, content=content, headers=headers)


def check_answer(method: str, path: str, response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400:
        ErrorResponse.model_validate(response.json())
    else:
        ENDPOINTS[(method, path)].model_validate(response.json())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_shaped_json_never_breaks_the_server(fuzz_client, data) -> None:
    method, path = data.draw(st.sampled_from(sorted(ENDPOINTS)))
    if method == "DELETE":
        body = data.draw(st.fixed_dictionaries({"ids": st.lists(ids, max_size=6)}))
    else:
        body = data.draw(bodies[path])
    r = send(fuzz_client, method, path, body)
    assert r.status_code != 503, r.text  # nothing here should overload or fail to save
    check_answer(method, path, r)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_text_only_bundle_answers_every_image_with_a_4xx(text_only_client, data) -> None:
    path = data.draw(st.sampled_from(sorted(bodies)))
    body = data.draw(bodies[path])
    r = send(text_only_client, "POST", path, body)
    assert r.status_code != 503, r.text
    check_answer("POST", path, r)
    if r.status_code == 400 and r.json()["error"]["type"] == "unsupported_modality":
        assert r.json()["error"]["field"].endswith("image")
        assert "no image graph" in r.json()["error"]["message"]


def _within_limits(payload: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(payload)) as img:
        return img.width * img.height <= LIMITS.max_image_pixels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(encoded_images(), min_size=1, max_size=4),
    caption=st.one_of(st.none(), st.text(max_size=20).filter(lambda t: "\ud800" not in t)),
    instruction=st.one_of(st.none(), st.just("Find it.")),
)
def test_every_real_image_within_limits_embeds(fuzz_client, payloads, caption, instruction) -> None:
    items = []
    for p in payloads:
        item = {"image": "data:image/png;base64," + base64.b64encode(p).decode()}
        items.append(item if caption is None else {**item, "text": caption})
    body = {"input": items} if instruction is None else {"input": items, "instruction": instruction}
    r = send(fuzz_client, "POST", "/v1/embeddings", body)
    check_answer("POST", "/v1/embeddings", r)
    if len(r.request.content) > LIMITS.max_body_bytes:  # e.g. 4 raw BMPs
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    elif all(_within_limits(p) for p in payloads):
        assert r.status_code == 200, r.text
        assert len(r.json()["data"]) == len(items)
    else:
        assert r.status_code == 400 and "pixels" in r.json()["error"]["message"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)), body=st.one_of(json_values, st.binary(max_size=80))
)
def test_arbitrary_bodies_are_4xx(fuzz_client, endpoint, body) -> None:
    method, path = endpoint
    r = send(fuzz_client, method, path, body)
    check_answer(method, path, r)
    if not isinstance(body, dict):
        assert r.status_code == 400


# -- schemathesis: the spec drives the generation and judges the answers --------------------


def _schema(host: str):  # type: ignore[no-untyped-def]
    import schemathesis

    # Built at import (schemathesis parametrizes at collection); nothing starts until used.
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(None, host))


def _conforms(case) -> None:  # type: ignore[no-untyped-def]
    # Positive-data acceptance is left out: the spec cannot say that an image must decode,
    # that `model` must name the served bundle, or the server's configured limits.
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    case.call_and_validate(headers=HEADERS, excluded_checks=[positive_data_acceptance])


_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@_schema("127.0.0.1").parametrize()
@_SETTINGS
def test_openapi_conformance_loopback(case) -> None:  # type: ignore[no-untyped-def]
    _conforms(case)


@pytest.mark.slow
@_schema("0.0.0.0").parametrize()
@_SETTINGS
def test_openapi_conformance_token_for_everything(case) -> None:  # type: ignore[no-untyped-def]
    _conforms(case)
