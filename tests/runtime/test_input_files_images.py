"""read_items(images=True): image and text+image records, paths relative to the JSONL file."""

from __future__ import annotations

import json

import pytest
from umr.runtime.input_files import read_items

from umr.errors import InputValueError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_kinds_and_paths(tmp_path, monkeypatch):
    (tmp_path / "data" / "img").mkdir(parents=True)
    (tmp_path / "data" / "img" / "a.png").write_bytes(b"x")
    absolute = tmp_path / "b.png"
    absolute.write_bytes(b"y")
    rows = [
        {"text": "words"},
        {"image": "img/a.png"},
        {"text": "", "image": "img/a.png"},
        {"text": "pair", "image": str(absolute)},
    ]
    _write(tmp_path / "data" / "in.jsonl", rows)
    monkeypatch.chdir(tmp_path)  # a relative JSONL path: images still resolve from its folder
    items = read_items("data/in.jsonl", images=True)
    assert [it.kind for it in items] == ["text", "image", "image", "text+image"]
    assert items[1].image == (tmp_path / "data" / "img" / "a.png").resolve()
    assert items[1].image.is_absolute() and items[1].text == ""
    assert items[3].image == absolute


def test_images_are_opt_in(tmp_path):
    path = _write(tmp_path / "in.jsonl", [{"text": "a", "image": "missing.png"}])
    assert read_items(path)[0].image is None  # text readers ignore the key, as before
    with pytest.raises(InputValueError, match=r"in\.jsonl:1: image file not found"):
        read_items(path, images=True)
    only_image = _write(tmp_path / "img.jsonl", [{"image": "missing.png"}])
    with pytest.raises(InputValueError, match="'text' must be a string, got NoneType"):
        read_items(only_image)
