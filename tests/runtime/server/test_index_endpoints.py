"""POST /v1/search, POST and DELETE /v1/index/items: results, filters, persistence, conflicts."""

from __future__ import annotations

import threading

import pytest
from umr.runtime.index import load as load_index
from umr.runtime.server.schemas import (
    AddItemsResponse,
    DeleteItemsResponse,
    ErrorResponse,
    SearchResponse,
)

ITEMS = [
    {"id": 1, "text": "red apple", "metadata": {"lang": "en", "n": 1}},
    {"id": "doc-2", "text": "green pear", "metadata": {"lang": "fr", "n": 2}},
    {"id": 3, "text": "blue sky", "metadata": {"lang": "en", "tags": {"kind": "sky"}}},
    {"id": 4, "text": "no metadata"},
]


def add(client, kit, items=ITEMS):  # type: ignore[no-untyped-def]
    return client.post("/v1/index/items", json={"items": items}, headers=kit.AUTH)


def test_add_then_search_returns_text_and_metadata(client, kit, tmp_path) -> None:
    r = add(client, kit)
    assert r.status_code == 200, r.text
    assert AddItemsResponse.model_validate(r.json()) == AddItemsResponse(added=4, count=4)
    r = client.post("/v1/search", json={"text": "red apple", "k": 2})
    body = SearchResponse.model_validate(r.json())
    assert body.hits[0].id == 1 and body.hits[0].text == "red apple"
    assert body.hits[0].metadata == {"lang": "en", "n": 1}
    assert body.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(body.hits) == 2 and body.model == "fake-model" and body.usage.prompt_tokens > 0
    # persisted: the saved directory holds all four, in the `umr index build` layout
    saved = load_index(tmp_path / "index")
    assert len(saved) == 4 and saved.get("doc-2") == {
        "text": "green pear",
        "metadata": {"lang": "fr", "n": 2},
    }


def test_filter_is_equality_on_metadata_fields(client, kit) -> None:
    add(client, kit)
    r = client.post("/v1/search", json={"text": "x", "k": 10, "filter": {"lang": "en"}})
    assert sorted(h["id"] for h in r.json()["hits"]) == [1, 3]
    r = client.post("/v1/search", json={"text": "x", "filter": {"lang": "en", "n": 1}})
    assert [h["id"] for h in r.json()["hits"]] == [1]
    r = client.post("/v1/search", json={"text": "x", "filter": {"tags.kind": "sky"}})
    assert [h["id"] for h in r.json()["hits"]] == [3]
    r = client.post("/v1/search", json={"text": "x", "filter": {"lang": "de"}})
    assert r.json()["hits"] == []


@pytest.mark.parametrize("flt", [{"not a key!": 1}, {"lang": None}, {"lang": [1]}, {"": 1}])
def test_bad_filter_is_a_400_naming_filter(client, kit, flt) -> None:
    add(client, kit)
    r = client.post("/v1/search", json={"text": "x", "filter": flt})
    assert r.status_code == 400 and r.json()["error"]["field"].startswith("filter")


def test_nan_filter_value_is_a_400(client, kit) -> None:
    body = b'{"text": "x", "filter": {"n": NaN}}'
    r = client.post("/v1/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "filter"


def test_deeply_nested_metadata_is_refused(client, kit) -> None:
    deep: dict = {"leaf": 1}
    for _ in range(40):
        deep = {"a": deep}
    r = add(client, kit, [{"id": 1, "text": "a", "metadata": deep}])
    assert r.status_code == 400 and "nested" in r.json()["error"]["message"]


def test_search_by_image_and_by_pair(client, kit) -> None:
    img = kit.png_data_url()
    items = [{"id": "pic", "image": img, "metadata": {"src": "a.png"}}, *ITEMS[:2]]
    assert add(client, kit, items).status_code == 200
    for query in ({"image": img}, {"text": "caption", "image": img}):
        r = client.post("/v1/search", json={**query, "k": 3})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert len(hits) == 3
        if "text" not in query:  # same image, same vector
            assert hits[0]["id"] == "pic" and hits[0]["text"] is None
            assert hits[0]["metadata"] == {"src": "a.png"}


def test_search_needs_a_query_and_bounded_k(make_client) -> None:
    client = make_client(limits={"max_k": 5})
    assert client.post("/v1/search", json={"k": 3}).json()["error"]["field"] is None
    for k, field in ((0, "k"), (6, "k"), ("3", "k")):
        r = client.post("/v1/search", json={"text": "x", "k": k})
        assert r.status_code == 400 and r.json()["error"]["field"] == field


def test_duplicate_ids_conflict_and_change_nothing(client, kit) -> None:
    add(client, kit)
    r = add(client, kit, [{"id": 9, "text": "new"}, {"id": 1, "text": "dup"}])
    assert r.status_code == 409 and r.json()["error"]["field"] == "items[1].id"
    r = add(client, kit, [{"id": 7, "text": "a"}, {"id": 7, "text": "b"}])
    assert r.status_code == 409
    assert client.get("/healthz").json()["index_items"] == 4


def test_delete_removes_and_persists(client, kit, tmp_path) -> None:
    add(client, kit)
    r = client.request("DELETE", "/v1/index/items", json={"ids": [1, "doc-2"]}, headers=kit.AUTH)
    assert r.status_code == 200
    assert DeleteItemsResponse.model_validate(r.json()) == DeleteItemsResponse(deleted=2, count=2)
    assert sorted(map(str, load_index(tmp_path / "index").ids())) == ["3", "4"]
    hits = client.post("/v1/search", json={"text": "red apple"}).json()["hits"]
    assert {h["id"] for h in hits} == {3, 4}


def test_delete_unknown_or_repeated_id_changes_nothing(client, kit) -> None:
    add(client, kit)
    r = client.request("DELETE", "/v1/index/items", json={"ids": [3, 99]}, headers=kit.AUTH)
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_id"
    r = client.request("DELETE", "/v1/index/items", json={"ids": [3, 3]}, headers=kit.AUTH)
    assert r.status_code == 400
    assert client.get("/healthz").json()["index_items"] == 4


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"id": 1.5, "text": "a"}, "items[0].id"),
        ({"id": True, "text": "a"}, "items[0].id"),
        ({"id": "", "text": "a"}, "items[0].id"),
        ({"id": 2**70, "text": "a"}, "items[0].id"),
        ({"id": 1}, "items[0]"),
        ({"id": 1, "text": "a", "metadata": [1]}, "items[0].metadata"),
        ({"id": 1, "text": "a", "extra": 1}, "items[0].extra"),
    ],
)
def test_bad_items_name_the_field(client, kit, item, field) -> None:
    r = add(client, kit, [item])
    assert r.status_code == 400, r.text
    assert ErrorResponse.model_validate(r.json()).error.field == field


def test_nan_metadata_and_lone_surrogates_are_400(client, kit) -> None:
    body = b'{"items": [{"id": 1, "text": "a", "metadata": {"x": NaN}}]}'
    headers = {**kit.AUTH, "content-type": "application/json"}
    r = client.post("/v1/index/items", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["field"] == "items[0].metadata"
    body = b'{"items": [{"id": "\\ud800", "text": "a"}]}'
    r = client.post("/v1/index/items", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["field"] == "items[0].id"
    assert client.get("/healthz").json()["index_items"] == 0


def test_failed_save_rolls_back_the_add(make_client, kit, tmp_path, monkeypatch) -> None:
    client = make_client()
    add(client, kit, ITEMS[:1])
    index = client.app.state.services.index.index

    def broken_save(path):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index, "save", broken_save)
    r = add(client, kit, ITEMS[1:])
    assert r.status_code == 503 and r.json()["error"]["type"] == "persist_failed"
    assert len(index) == 1 and len(load_index(tmp_path / "index")) == 1


def test_concurrent_writers_are_serialized(client, kit, tmp_path) -> None:
    def writer(w: int) -> None:
        items = [{"id": f"w{w}-{i}", "text": f"text {w} {i}"} for i in range(5)]
        assert add(client, kit, items).status_code == 200

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(load_index(tmp_path / "index")) == 30


def test_serving_without_location_keeps_writes_in_memory(make_client, kit, tmp_path) -> None:
    client = make_client(location=None)
    assert add(client, kit).status_code == 200
    assert not (tmp_path / "index").exists()
