"""The npm packages the emoji dataset is built from, fetched with ``npm pack`` into a cache.

Each cached tarball's sha256 is recorded in ``checksums.json`` beside it and checked on
every reuse, so a corrupted or swapped cache file is caught before it reaches a dataset.
Offline machines pass the tarballs with ``--from`` instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from umr.atomic import atomic_write_json
from umr.errors import FetchError

CHECKSUMS_FILE = "checksums.json"
DEFAULT_CACHE = Path("~/.cache/umr/npm")


@dataclass(frozen=True)
class Source:
    """An npm package pinned to one version."""

    name: str
    version: str

    @property
    def spec(self) -> str:
        """``name@version`` as npm takes it."""
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        """The file name ``npm pack`` gives the tarball (scope folded in, as npm does)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


@dataclass(frozen=True)
class Tarball:
    """A verified local tarball of one :class:`Source`."""

    source: Source
    path: Path
    sha256: str


TWITTER = Source("emoji-datasource-twitter", "16.0.0")
GOOGLE = Source("emoji-datasource-google", "16.0.0")
TABLER = Source("@tabler/icons", "3.51.0")
SOURCES: tuple[Source, ...] = (TWITTER, GOOGLE, TABLER)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def identify(path: Path) -> tuple[str, str]:
    """(name, version) from a tarball's ``package/package.json``.

    Raises:
        FetchError: not a readable gzip tarball, or it has no valid package.json.
    """
    try:
        with tarfile.open(path, "r:gz") as tf:
            for member in tf:  # package.json sits near the start; stop as soon as it is found
                if member.name == "package/package.json" and member.isfile():
                    meta = json.load(tf.extractfile(member))  # type: ignore[arg-type]
                    return str(meta["name"]), str(meta["version"])
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise FetchError(f"{path}: not a readable npm tarball ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise FetchError(
            f"{path}: package/package.json has no valid name/version ({exc})"
        ) from None
    raise FetchError(f"{path}: not an npm tarball (no package/package.json)")


def match_local(paths: Iterable[Path], sources: Sequence[Source]) -> dict[Source, Tarball]:
    """Map each ``--from`` tarball to the source it is, refusing strangers and wrong versions."""
    by_name = {s.name: s for s in sources}
    found: dict[Source, Tarball] = {}
    for path in paths:
        name, version = identify(path)
        source = by_name.get(name)
        if source is None:
            wanted = ", ".join(s.spec for s in sources)
            raise FetchError(f"{path}: is {name}@{version}, not one of the sources ({wanted})")
        if version != source.version:
            raise FetchError(
                f"{path}: is {name}@{version}, but the dataset is pinned to {source.spec}; "
                f"run 'npm pack {source.spec}' to get that version"
            )
        if source in found:
            raise FetchError(f"{path}: {source.spec} was already given as {found[source].path}")
        found[source] = Tarball(source, path.resolve(), sha256_file(path))
    return found


def fetch(sources: Sequence[Source], cache_dir: Path, local: Iterable[Path] = ()) -> list[Tarball]:
    """One verified tarball per source: the ``local`` ones first, the rest from the cache/npm."""
    have = match_local(local, sources)
    missing = [s for s in sources if s not in have]
    if missing:
        cache_dir = cache_dir.expanduser()
        checksums = _read_checksums(cache_dir)
        for source in missing:
            have[source] = _cached(source, cache_dir, checksums)
    return [have[s] for s in sources]


def _read_checksums(cache_dir: Path) -> dict[str, str]:
    path = cache_dir / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FetchError(f"{path}: unreadable ({exc}); delete it to re-fetch") from None
    if not isinstance(data, dict):
        raise FetchError(f"{path}: expected an object of file name -> sha256; delete it")
    return {str(k): str(v) for k, v in data.items()}


def _cached(source: Source, cache_dir: Path, checksums: dict[str, str]) -> Tarball:
    path = cache_dir / source.tarball_name
    recorded = checksums.get(source.tarball_name)
    # A file without a recorded checksum may be a half-finished copy: fetch it again.
    if path.is_file() and recorded is not None:
        actual = sha256_file(path)
        if actual != recorded:
            raise FetchError(
                f"{path}: sha256 {actual} differs from {recorded} recorded in "
                f"{cache_dir / CHECKSUMS_FILE}; delete the tarball to fetch it again"
            )
        return Tarball(source, path, actual)
    _npm_pack(source, path)
    digest = sha256_file(path)
    checksums[source.tarball_name] = digest
    atomic_write_json(cache_dir / CHECKSUMS_FILE, checksums)
    return Tarball(source, path, digest)


def _npm_pack(source: Source, dest: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"npm not found on PATH; install Node.js/npm to fetch {source.spec}, "
            f"or pass the tarballs with --from (get them with 'npm pack {source.spec}')"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temp dir is inside the cache so the final rename stays on one filesystem.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".npm-pack-") as tmp:
        proc = subprocess.run(
            [npm, "pack", source.spec, "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        packed = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(packed) != 1:
            detail = (proc.stderr.strip().splitlines() or ["no tarball produced"])[-1]
            raise FetchError(f"npm pack {source.spec} failed: {detail}")
        if identify(packed[0]) != (source.name, source.version):
            raise FetchError(f"npm pack {source.spec} produced a different package")
        os.replace(packed[0], dest)
