"""Build the emoji/icon retrieval dataset: fetch, extract, rasterize, split, write.

Everything is written to a staging folder beside ``out`` and renamed into place at the
end, so ``out`` is either the previous complete dataset or the new complete one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.training.data import emoji_extract as ex
from umr.training.data.emoji_sources import (
    DEFAULT_CACHE,
    GOOGLE,
    SOURCES,
    TABLER,
    TWITTER,
    Tarball,
    fetch,
)
from umr.training.data.emoji_tasks import build_records, emoji_id, icon_id, split_identities
from umr.training.data.emoji_tasks import task_counts as _task_counts
from umr.training.data.records import Record, write_records

from umr.atomic import atomic_write_json, fsync_dir
from umr.errors import DataError

EMOJI_STYLES = ("twitter", "google")
MANIFEST_FORMAT = "umr-records/1"


@dataclass(frozen=True)
class BuildOptions:
    """What ``umr data emoji`` takes; see its --help for each field."""

    out: Path = Path("artifacts/data/emoji")
    cache: Path = DEFAULT_CACHE
    local: tuple[Path, ...] = ()
    seed: int = 0
    test_emoji: int = 600
    test_icons: int = 600
    force: bool = False
    progress: bool = True


def build_emoji_dataset(opts: BuildOptions) -> dict[str, Any]:
    """Build the dataset into ``opts.out``; returns the manifest written there.

    Raises:
        DataError: ``out`` exists and ``force`` is off, or the sources are unusable.
        FetchError: a source could not be fetched or failed its checksum.
    """
    started = time.monotonic()
    out = opts.out.absolute()
    _refuse_existing(out, opts.force)
    tarballs = {t.source: t for t in fetch(SOURCES, opts.cache, opts.local)}
    with _staging(out) as stage:
        emoji, icons = _write_images(tarballs, stage / "images", opts.progress)
        test_ids = _split(emoji, icons, opts)
        train, test = build_records(emoji, icons, stage / "images", test_ids)
        write_records(stage / "train.jsonl", train)
        write_records(stage / "test.jsonl", test)
        manifest = _manifest(opts, list(tarballs.values()), stage / "images", train, test)
        manifest["build_seconds"] = round(time.monotonic() - started, 1)
        atomic_write_json(stage / "manifest.json", manifest)
        _publish(stage, out, opts.force)
    return manifest


def _refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise DataError(f"{out} already exists; pass --force to replace it")


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already once published


def _publish(stage: Path, out: Path, force: bool) -> None:
    _refuse_existing(out, force)  # again: another build may have finished meanwhile
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{stage.name.rsplit('-', 1)[-1]}")
        out.rename(old)
    stage.rename(out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


def _write_images(
    tarballs: dict[Any, Tarball], images: Path, progress: bool
) -> tuple[list[ex.Emoji], list[ex.Icon]]:
    catalogue = ex.read_json_member(tarballs[TWITTER].path, "package/emoji.json")
    emoji = ex.parse_emoji(catalogue, EMOJI_STYLES)
    written = {
        style: _extract_style(tarballs[src].path, style, emoji, images / style, progress)
        for style, src in (("twitter", TWITTER), ("google", GOOGLE))
    }
    icons = ex.parse_icons(ex.read_json_member(tarballs[TABLER].path, "package/icons.json"))
    with _bar(sum(len(i.styles) for i in icons), "rasterizing icons", progress) as bar:
        done = ex.rasterize_icons(tarballs[TABLER].path, icons, images / "icons", bar.update)
    return _keep_written(emoji, written), _keep_rasterized(icons, done)


def _extract_style(
    tarball: Path, style: str, emoji: list[ex.Emoji], dest: Path, progress: bool
) -> set[str]:
    wanted = {e.images[style] for e in emoji if style in e.images}
    wanted |= {v.images[style] for e in emoji for v in e.variants if style in v.images}
    with _bar(len(wanted), f"extracting {style}", progress) as bar:
        return ex.extract_pngs(tarball, style, wanted, dest, bar.update)


def _keep_written(emoji: list[ex.Emoji], written: dict[str, set[str]]) -> list[ex.Emoji]:
    """Drop styles whose image the tarball flagged but did not contain."""

    def keep(images: dict[str, str]) -> dict[str, str]:
        return {s: f for s, f in images.items() if f in written[s]}

    out = []
    for e in emoji:
        variants = tuple(
            dataclasses.replace(v, images=keep(v.images)) for v in e.variants if keep(v.images)
        )
        if keep(e.images):
            out.append(dataclasses.replace(e, images=keep(e.images), variants=variants))
    return out


def _keep_rasterized(icons: list[ex.Icon], done: set[tuple[str, str]]) -> list[ex.Icon]:
    out = []
    for icon in icons:
        styles = tuple(s for s in icon.styles if (s, icon.name) in done)
        if "outline" in styles:
            out.append(dataclasses.replace(icon, styles=styles))
    return out


def _split(emoji: list[ex.Emoji], icons: list[ex.Icon], opts: BuildOptions) -> set[str]:
    test = split_identities([emoji_id(e) for e in emoji], opts.test_emoji, opts.seed, "emoji")
    test |= split_identities([icon_id(i) for i in icons], opts.test_icons, opts.seed, "icons")
    return test


def _split_counts(records: Sequence[Record], file: str) -> dict[str, Any]:
    idents = {r.meta["identity"] for r in records}
    return {
        "file": file,
        "records": len(records),
        "tasks": _task_counts(records),
        "identities": {
            "emoji": sum(1 for i in idents if i.startswith("emoji:")),
            "icons": sum(1 for i in idents if i.startswith("icon:")),
        },
    }


def _manifest(
    opts: BuildOptions,
    tarballs: list[Tarball],
    images: Path,
    train: list[Record],
    test: list[Record],
) -> dict[str, Any]:
    from umr import __version__

    folders = ("twitter", "google", "icons/outline", "icons/filled")
    return {
        "format": MANIFEST_FORMAT,
        "dataset": "emoji",
        "umr_version": __version__,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources": [
            {"name": t.source.name, "version": t.source.version, "sha256": t.sha256}
            for t in tarballs
        ],
        "seed": opts.seed,
        "images": {f: sum(1 for _ in (images / f).glob("*.png")) for f in folders},
        "splits": {
            "train": _split_counts(train, "train.jsonl"),
            "test": _split_counts(test, "test.jsonl"),
        },
    }
