"""Atomic writes leave the old file intact when writing fails, and no temp files behind."""

from __future__ import annotations

import json

import pytest

from umr.atomic import atomic_open, atomic_write_json


def test_write_json_replaces_content(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_json(path, {"b": 1, "a": "é"})
    atomic_write_json(path, {"c": 2})
    assert json.loads(path.read_text(encoding="utf-8")) == {"c": 2}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failure_keeps_old_content_and_removes_temp(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path) as fh:
        fh.write(b"half-written")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_published_file_follows_umask_not_mkstemp_0600(tmp_path):

    from umr import atomic

    atomic_write_json(tmp_path / "a.json", {})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
