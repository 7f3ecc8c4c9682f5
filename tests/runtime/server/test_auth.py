"""Bearer tokens: writes always need one; reads need one off loopback; refusing to start."""

from __future__ import annotations

import pytest
from umr.runtime.server.config import ServerConfig, is_loopback

from umr.errors import ServerError

WRITE = ("POST", "/v1/index/items", {"items": [{"id": 1, "text": "a"}]})
DELETE = ("DELETE", "/v1/index/items", {"ids": [1]})
READS = [
    ("POST", "/v1/embeddings", {"input": "a"}),
    ("POST", "/v1/search", {"text": "a"}),
    ("GET", "/healthz", None),
    ("GET", "/metrics", None),
]


def call(client, method, path, body, headers=None):  # type: ignore[no-untyped-def]
    return client.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize("request_", [WRITE, DELETE])
def test_writes_need_the_token(client, kit, request_) -> None:
    r = call(client, *request_)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["type"] == "unauthorized"
    r = call(client, *request_, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = call(client, *request_, headers={"Authorization": f"Basic {kit.TOKEN}"})
    assert r.status_code == 401


def test_writes_with_the_token_work(client, kit) -> None:
    assert call(client, *WRITE, headers=kit.AUTH).status_code == 200
    assert call(client, *DELETE, headers=kit.AUTH).status_code == 200


def test_without_a_token_writes_are_disabled(make_client) -> None:
    client = make_client(token=None)
    r = call(client, *WRITE, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "writes_disabled"
    for request_ in READS:
        assert call(client, *request_).status_code == 200


@pytest.mark.parametrize("request_", READS)
def test_loopback_reads_are_open(client, request_) -> None:
    assert call(client, *request_).status_code == 200


@pytest.mark.parametrize("request_", READS)
def test_non_loopback_needs_the_token_for_everything(make_client, kit, request_) -> None:
    client = make_client(host="0.0.0.0")
    assert call(client, *request_).status_code == 401
    assert call(client, *request_, headers=kit.AUTH).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_refuses_non_loopback_without_token(host) -> None:
    with pytest.raises(ServerError, match="without a token"):
        ServerConfig(host=host)
    ServerConfig(host=host, token="t")  # fine with one


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("localhost.evil.com", False),
    ],
)
def test_is_loopback(host, loopback) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("token", ["", " padded ", "\n"])
def test_blank_or_padded_tokens_are_refused(token) -> None:
    with pytest.raises(ServerError, match="token"):
        ServerConfig(token=token)


def test_token_from_env(monkeypatch) -> None:
    from umr.runtime.server.launch import token_from_env

    monkeypatch.setenv("UMR_TOKEN", "from-env")
    assert token_from_env(None) == "from-env"
    assert token_from_env("explicit") == "explicit"
    monkeypatch.setenv("UMR_TOKEN", "")
    assert token_from_env(None) is None
