"""The on-disk layout: generation-numbered data files plus a self-checksummed manifest.

A save writes ``<role>-<gen>.<ext>`` files (temp + fsync + rename), then replaces
``manifest.json`` atomically, fsyncs the directory, and only then removes older
generations. The manifest is the single commit point, so a SIGKILL at any moment leaves
either the old or the new state loadable. Load trusts nothing before it has checked the
manifest's own checksum and every file's size and sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from umr.atomic import atomic_write_json, fsync_dir
from umr.bundle import sha256_file
from umr.errors import IndexCorruptError

MANIFEST = "manifest.json"
FORMAT = "umr-index"
FORMAT_VERSION = 1
KINDS = ("hnsw", "exact")
_DATA_NAME = re.compile(r"^(hnsw|items|vectors)-(\d+)\.(bin|json|npy)$")
_TEMP_NAME = re.compile(r"^\.(hnsw|items|vectors)-\d+\..*\.tmp$|^\.manifest\.json\..*\.tmp$")


@dataclass(frozen=True)
class FileEntry:
    """One data file named by the manifest, with what it must hash to."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class IndexManifest:
    """What ``manifest.json`` records about one saved index."""

    kind: str
    dim: int
    space: str
    M: int
    ef_construction: int
    ef: int
    count: int
    labels: int
    capacity: int
    generation: int
    files: Mapping[str, FileEntry]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON, with ``manifest_sha256`` over its canonical form."""
        body = asdict(self)
        body["files"] = {role: asdict(entry) for role, entry in self.files.items()}
        return {**body, "manifest_sha256": _canonical_sha256(body)}


_INT_FIELDS = ("dim", "M", "ef_construction", "ef", "count", "labels", "capacity", "generation")
_MINIMUM = {"dim": 1, "M": 2, "ef_construction": 1, "ef": 1}


def parse_manifest(obj: Any, where: str) -> IndexManifest:
    """Check a decoded manifest field by field; IndexCorruptError names the field."""
    if not isinstance(obj, dict):
        raise IndexCorruptError(f"{where}: expected a JSON object")
    body = dict(obj)
    claimed = body.pop("manifest_sha256", None)
    if claimed != _canonical_sha256(body):
        raise IndexCorruptError(f"{where}: manifest_sha256 does not match the manifest's content")
    if body.get("format") != FORMAT or body.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{where}: expected format {FORMAT!r} version {FORMAT_VERSION}, "
            f"got {body.get('format')!r} version {body.get('format_version')!r}"
        )
    for key in _INT_FIELDS:
        value, low = body.get(key), _MINIMUM.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise IndexCorruptError(f"{where}: field {key!r} is {value!r}, expected int >= {low}")
    if body.get("kind") not in KINDS:
        raise IndexCorruptError(f"{where}: field 'kind' is {body.get('kind')!r}, expected {KINDS}")
    if body.get("space") not in ("cosine", "ip", "l2"):
        raise IndexCorruptError(f"{where}: field 'space' is {body.get('space')!r}")
    files = body.get("files")
    if not isinstance(files, dict):
        raise IndexCorruptError(f"{where}: field 'files' is not an object")
    entries = {role: _parse_entry(role, entry, where) for role, entry in files.items()}
    fields = {key: body.get(key) for key in (*_INT_FIELDS, "kind", "space")}
    return IndexManifest(**fields, files=entries)


def read_manifest(directory: Path) -> IndexManifest:
    """Read and check ``directory/manifest.json``."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise IndexCorruptError(f"{directory}: not a directory (expected a saved index)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: missing (is {directory} a saved index?)") from None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{path}: not valid JSON ({exc})") from None
    return parse_manifest(obj, str(path))


def verified_path(directory: Path, manifest: IndexManifest, role: str) -> Path:
    """The path of the manifest's ``role`` file after its size and sha256 check out."""
    entry = manifest.files.get(role)
    if entry is None:
        raise IndexCorruptError(f"{directory / MANIFEST}: no '{role}' file listed")
    path = directory / entry.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: missing (listed in the manifest as '{role}')") from None
    if size != entry.size:
        raise IndexCorruptError(f"{path}: size {size} bytes, manifest says {entry.size}")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise IndexCorruptError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's {entry.sha256[:16]}..."
        )
    return path


def write_data_file(directory: Path, name: str, write: Callable[[Path], None]) -> FileEntry:
    """Let ``write`` fill a temp path, fsync it, publish it as ``name``; return its entry."""
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        entry = FileEntry(name=name, size=tmp.stat().st_size, sha256=sha256_file(tmp))
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return entry


def commit(directory: Path, manifest: IndexManifest) -> None:
    """Publish ``manifest`` (the commit point), then drop files it no longer names."""
    fsync_dir(directory)  # the data files' renames must be durable before the manifest's
    atomic_write_json(directory / MANIFEST, manifest.to_json())
    keep = {entry.name for entry in manifest.files.values()}
    for path in directory.iterdir():
        stale = _DATA_NAME.match(path.name) or _TEMP_NAME.match(path.name)
        if stale and path.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def next_generation(directory: Path) -> int:
    """One past the highest generation found in ``directory`` (files or manifest)."""
    gens = [int(m.group(2)) for p in directory.iterdir() if (m := _DATA_NAME.match(p.name))]
    with contextlib.suppress(IndexCorruptError):
        gens.append(read_manifest(directory).generation)
    return max(gens, default=0) + 1


@contextlib.contextmanager
def save_lock(directory: Path) -> Iterator[None]:
    """Serialize saves into one directory across processes (an flock on ``.lock``)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _parse_entry(role: str, entry: Any, where: str) -> FileEntry:
    if not isinstance(entry, dict):
        raise IndexCorruptError(f"{where}: files.{role} is not an object")
    name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
    if not isinstance(name, str) or not _DATA_NAME.match(name):
        raise IndexCorruptError(f"{where}: files.{role}.name {name!r} is not a data file name")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise IndexCorruptError(f"{where}: files.{role}.size {size!r} is not a byte count")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise IndexCorruptError(f"{where}: files.{role}.sha256 is not a sha256 hex digest")
    return FileEntry(name=name, size=size, sha256=digest)


def _canonical_sha256(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
