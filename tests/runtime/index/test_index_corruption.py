"""Damaged index directories end in IndexCorruptError, never in a crash or garbage.

Each load runs in a subprocess: hnswlib can abort or segfault on a bad file, and a test
run in-process would die with it instead of failing cleanly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from umr.runtime.index import ExactIndex, Index

CHILD = """
import sys
import numpy as np
from umr.errors import IndexCorruptError
from umr.runtime.index import load
try:
    index = load(sys.argv[1])
    index.search(np.ones(index.dim, np.float32), k=5)
except IndexCorruptError as exc:
    print("CORRUPT:", exc)
    sys.exit(0)
print("LOADED without error")
sys.exit(3)
"""

pytestmark = pytest.mark.slow  # ~0.4 s per case: one interpreter start each


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _write_manifest(d: Path, body: dict) -> None:
    """Rewrite the manifest with a valid self-checksum (documented recipe)."""
    body = {k: v for k, v in body.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body["manifest_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(body))


def _data(d: Path, role: str = "index") -> Path:
    return d / _manifest(d)["files"][role]["name"]


def _reseal(d: Path, role: str = "index") -> None:
    """Make the manifest agree with the file's current bytes, so only deeper checks remain."""
    body, path = _manifest(d), _data(d, role)
    body["files"][role]["size"] = path.stat().st_size
    body["files"][role]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    _write_manifest(d, body)


def _patch(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(d: Path) -> None:
    p = _data(d)
    p.write_bytes(p.read_bytes()[:-100])


def _header_field(fmt: str, offset: int, value: int | float):
    """Overwrite one header field (offsets: six size_t, int maxlevel @48, uint entry @52,
    maxM @56, maxM0 @64, M @72, double mult @80, ef_construction @88)."""

    def damage(d: Path) -> None:
        _patch(_data(d), offset, struct.pack(fmt, value))
        _reseal(d)

    return damage


def _wrong_dim(d: Path) -> None:
    body = _manifest(d)
    body["dim"] = 17
    _write_manifest(d, body)


def _link_out_of_range(d: Path) -> None:
    _patch(_data(d), 96 + 4, struct.pack("<I", 10_000))  # element 0, first level-0 link
    _reseal(d)


def _cut_links_resealed(d: Path) -> None:
    p = _data(d)
    p.write_bytes(p.read_bytes()[:-7])
    _reseal(d)


def _empty_dir(d: Path) -> None:
    for p in d.iterdir():
        p.unlink()


def _garbage(d: Path) -> None:
    _data(d).write_bytes(np.random.default_rng(0).bytes(_data(d).stat().st_size))


def _garbage_resealed(d: Path) -> None:
    _garbage(d)
    _reseal(d)


def _items_edited(d: Path) -> None:
    path = _data(d, "items")
    items = json.loads(path.read_text())
    items["deleted"] = []
    path.write_text(json.dumps(items))
    body = _manifest(d)
    body["count"] = len(items["ids"])  # consistent with the items, not with the index file
    _write_manifest(d, body)
    _reseal(d, "items")


def _manifest_field(key: str, value: object) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        body = _manifest(d)
        body[key] = value
        _write_manifest(d, body)

    return damage


CASES = {
    "truncated index file": (_truncate, "size"),
    "flipped header byte": (lambda d: _flip(_data(d), 20), "sha256"),
    "flipped byte deep in data": (lambda d: _flip(_data(d), 3000), "sha256"),
    "wrong dim in manifest": (_wrong_dim, "dim"),
    "missing index file": (lambda d: _data(d).unlink(), "missing"),
    "missing manifest": (lambda d: (d / "manifest.json").unlink(), "missing"),
    "garbage bytes": (_garbage, "sha256"),
    "empty dir": (_empty_dir, "missing"),
    "manifest not JSON": (lambda d: (d / "manifest.json").write_text("{not json"), "JSON"),
    "manifest edited, checksum stale": (
        lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace('"ef": 40', '"ef": 41')
        ),
        "manifest_sha256",
    ),
    # Damage that passes the sha256 (manifest resealed): only the header checks remain.
    "resealed: garbage": (_garbage_resealed, "header"),
    "resealed: entry point past count": (_header_field("<I", 52, 10_000), "entry point"),
    "resealed: maxlevel huge": (_header_field("<i", 48, 1 << 30), "maxlevel"),
    "resealed: element count": (_header_field("<Q", 16, 7), "cur_element_count"),
    "resealed: M": (_header_field("<Q", 72, 5), "M is 5"),
    "resealed: mult": (_header_field("<d", 80, 0.1), "mult"),
    "resealed: level-0 link out of range": (_link_out_of_range, "link"),
    "resealed: link lists cut": (_cut_links_resealed, "link"),
    "resealed: deleted list edited": (_items_edited, "deleted"),
    "manifest: capacity": (_manifest_field("capacity", 5), "max_elements"),
    "manifest: path escape": (
        lambda d: _write_manifest(
            d, {**_manifest(d), "files": {"index": {"name": "../x", "size": 1, "sha256": "0"}}}
        ),
        "name",
    ),
    "manifest: not an object": (lambda d: _write_manifest_raw(d, "[1, 2]"), "JSON object"),
    "path is a file": (lambda d: _replace_with_file(d), "not a directory"),
}


def _write_manifest_raw(d: Path, text: str) -> None:
    (d / "manifest.json").write_text(text)


def _replace_with_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("not an index")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    index = Index.create(16, "cosine", M=8, ef=40)
    index.add(x, list(range(300)), [{"i": i} for i in range(300)])
    index.delete([3, 4, 5])
    path = tmp_path_factory.mktemp("good") / "ix"
    index.save(path)
    return path


def _load_in_child(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60
    )


def test_child_loads_the_undamaged_index(saved):
    done = _load_in_child(saved)
    assert done.returncode == 3 and "LOADED" in done.stdout, done.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_damage_ends_in_index_corrupt_error(case, saved, tmp_path):
    damage, expected = CASES[case]
    victim = tmp_path / "ix"
    shutil.copytree(saved, victim)
    damage(victim)
    done = _load_in_child(victim)
    assert done.returncode == 0, f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stdout.startswith("CORRUPT:"), done.stdout
    assert expected.lower() in done.stdout.lower(), done.stdout


def test_exact_index_damage_is_caught(tmp_path):
    index = ExactIndex.create(8, "l2")
    index.add(np.eye(8, dtype=np.float32), list(range(8)))
    index.save(tmp_path / "e")
    vectors = _data(tmp_path / "e", "vectors")
    vectors.write_bytes(vectors.read_bytes()[:-8])
    _reseal(tmp_path / "e", "vectors")
    done = _load_in_child(tmp_path / "e")
    assert done.returncode == 0 and "CORRUPT:" in done.stdout, done.stdout + done.stderr
    assert "npy" in done.stdout or "expected float32" in done.stdout
