"""Build a bundle in a temp directory beside its target and rename it into place at the end.

A reader of ``out_dir`` sees the old bundle or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from umr.atomic import fsync_dir
from umr.bundle import MANIFEST_NAME, sha256_file
from umr.errors import ExportError


def check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out_dir`` unless ``overwrite``; refuse a file in its place."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"output {out_dir} is not empty; pass overwrite=True to replace it")


@contextlib.contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh directory beside ``out_dir`` (same filesystem, so the rename is atomic).

    Removed on error; on success the caller publishes it with :func:`publish`.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already when published


def publish(stage: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``stage``: the old bundle is renamed aside, then deleted."""
    # mkdtemp/mkstemp create 0700/0600; a bundle is meant to be read by other users.
    os.chmod(stage, 0o755)
    for path in stage.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o644)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(out_dir, old)
    os.rename(stage, out_dir)
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (POSIX relative names), ``umr.json`` excluded."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() != MANIFEST_NAME
    }


class Steps:
    """Step lines on stderr (``umr export [2/5] quantize ...  12.3s``) when enabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.n = total, enabled, 0
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Announce the next step."""
        self.n += 1
        self.say(f"[{self.n}/{self.total}] {message}")

    def say(self, message: str) -> None:
        """A line with the elapsed time, e.g. a result."""
        if self.enabled:
            took = time.perf_counter() - self.t0
            print(f"umr export {message} ({took:.1f}s)", file=sys.stderr, flush=True)


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` (missing ones left out), for manifests."""
    out = {}
    for dist in names:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
