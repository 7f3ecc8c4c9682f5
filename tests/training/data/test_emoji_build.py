"""``umr data emoji`` end to end on tiny fake tarballs (no network, no real npm)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from umr.runtime.cli.main import main
from umr.training.data import emoji_sources
from umr.training.data.emoji_build import BuildOptions, build_emoji_dataset
from umr.training.data.emoji_sources import CHECKSUMS_FILE, SOURCES, sha256_file
from umr.training.data.emoji_tasks import TASK_INSTRUCTIONS
from umr.training.data.records import read_records

from umr.errors import DataError, FetchError

BUILT_TASKS = {"qt->ci", "qi->ct", "qi->ci", "(qi,qt)->ci", "qt->ct", "qt->(ci,ct)"}
FAKE_NPM = """#!/bin/sh
# Fake npm: "npm pack SPEC --silent" copies the matching fake tarball into the cwd.
echo "$@" >> "$NPM_LOG"
case "$2" in
  emoji-datasource-twitter@16.0.0) cp "$FAKE_SRC/emoji-datasource-twitter-16.0.0.tgz" . ;;
  emoji-datasource-google@16.0.0) cp "$FAKE_SRC/emoji-datasource-google-16.0.0.tgz" . ;;
  @tabler/icons@3.51.0) cp "$FAKE_SRC/tabler-icons-3.51.0.tgz" . ;;
  *) echo "npm error 404 $2" >&2; exit 1 ;;
esac
"""


def _opts(tmp_path: Path, local: list[Path], **kw: object) -> BuildOptions:
    base = {"out": tmp_path / "out", "cache": tmp_path / "cache", "local": tuple(local)}
    base.update(test_emoji=3, test_icons=1, progress=False)
    base.update(kw)
    return BuildOptions(**base)  # type: ignore[arg-type]


def _identities(path: Path) -> set[str]:
    return {r.meta["identity"] for r in read_records(path)}


def test_build_writes_images_records_and_manifest(tmp_path: Path, fake_sources: Any):
    manifest = build_emoji_dataset(_opts(tmp_path, fake_sources.all))
    out = tmp_path / "out"
    assert (out / "images/twitter/1f600.png").is_file()
    assert (out / "images/google/1f600-1f3fe.png").is_file()
    assert not (out / f"images/google/{fake_sources.missing_google}").exists()
    assert (out / "images/icons/filled/arrow-up.png").is_file()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    digests = {s["name"]: s["sha256"] for s in manifest["sources"]}
    assert digests["@tabler/icons"] == sha256_file(fake_sources.tabler)
    assert digests["emoji-datasource-google"] == sha256_file(fake_sources.google)
    assert [s["version"] for s in manifest["sources"]] == [s.version for s in SOURCES]
    assert manifest["images"]["icons/outline"] == 3
    assert not list(tmp_path.glob(".out.*")), "staging folder left behind"


def test_icons_are_64px_rgba_black_on_transparent(tmp_path: Path, fake_sources: Any):
    from PIL import Image

    build_emoji_dataset(_opts(tmp_path, fake_sources.all))
    img = Image.open(tmp_path / "out/images/icons/outline/arrow-up.png")
    assert img.size == (64, 64) and img.mode == "RGBA"
    assert img.getpixel((0, 63))[3] == 0 and img.getpixel((32, 32)) == (0, 0, 0, 255)


def test_split_is_disjoint_by_identity_and_seeded(tmp_path: Path, fake_sources: Any):
    manifest = build_emoji_dataset(_opts(tmp_path, fake_sources.all, seed=7))
    train = _identities(tmp_path / "out/train.jsonl")
    test = _identities(tmp_path / "out/test.jsonl")
    assert not train & test
    assert sum(i.startswith("emoji:") for i in test) == 3
    assert sum(i.startswith("icon:") for i in test) == 1
    assert manifest["splits"]["test"]["identities"] == {"emoji": 3, "icons": 1}
    again = build_emoji_dataset(_opts(tmp_path, fake_sources.all, seed=7, force=True))
    assert _identities(tmp_path / "out/test.jsonl") == test
    assert again["splits"] == manifest["splits"]


def test_every_task_present_and_records_valid(tmp_path: Path, fake_sources: Any):
    build_emoji_dataset(_opts(tmp_path, fake_sources.all, test_emoji=0, test_icons=0))
    records = read_records(tmp_path / "out/train.jsonl")
    assert {r.task for r in records} == BUILT_TASKS
    for r in records:
        assert r.query.instruction == TASK_INSTRUCTIONS[r.task]
        assert r.positive.instruction is None
        assert r.meta["source"] in ("emoji", "icons")
    texts = {(r.task, r.query.text) for r in records}
    assert ("(qi,qt)->ci", "medium-dark skin tone") in texts
    assert ("(qi,qt)->ci", "light and dark skin tones") in texts
    assert ("(qi,qt)->ci", "filled") in texts
    assert ("qt->ci", "face number 5") in texts  # emoji 5 has no name: its first short name
    assert ("qt->ct", "smile kw 2") in texts and ("qt->ct", "north") in texts


def test_test_split_keeps_one_direction_and_no_keyword_images(tmp_path: Path, fake_sources: Any):
    build_emoji_dataset(_opts(tmp_path, fake_sources.all, test_emoji=12, test_icons=3))
    test = read_records(tmp_path / "out/test.jsonl")
    assert all(r.query.image.parent.name == "twitter" for r in test if r.task == "qi->ci")
    names = {r.positive.text for r in test if r.task == "qi->ct"}
    assert not [r for r in test if r.task == "qt->ci" and r.query.text not in names]
    assert read_records(tmp_path / "out/train.jsonl") == []


def test_refuses_to_overwrite_without_force(tmp_path: Path, fake_sources: Any):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    with pytest.raises(DataError, match="--force"):
        build_emoji_dataset(_opts(tmp_path, fake_sources.all))
    assert (tmp_path / "out/keep.txt").read_text() == "mine"
    build_emoji_dataset(_opts(tmp_path, fake_sources.all, force=True))
    assert not (tmp_path / "out/keep.txt").exists()
    assert (tmp_path / "out/train.jsonl").is_file()


def test_wrong_version_refused(tmp_path: Path, fake_sources: Any, make_emoji_tarball):
    old = make_emoji_tarball(tmp_path / "old.tgz", "google", version="15.0.0")
    with pytest.raises(FetchError, match=r"15\.0\.0.*pinned to emoji-datasource-google@16\.0\.0"):
        build_emoji_dataset(_opts(tmp_path, [fake_sources.twitter, old, fake_sources.tabler]))


def test_unknown_or_broken_tarball_refused(tmp_path: Path, fake_sources: Any):
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(FetchError, match="not a readable npm tarball"):
        build_emoji_dataset(_opts(tmp_path, [broken]))


def test_same_package_twice_refused(tmp_path: Path, fake_sources: Any):
    with pytest.raises(FetchError, match="already given"):
        build_emoji_dataset(_opts(tmp_path, [*fake_sources.all, fake_sources.tabler]))


def test_too_many_test_identities(tmp_path: Path, fake_sources: Any):
    with pytest.raises(DataError, match="asked for 600 test identities, but there are 12"):
        build_emoji_dataset(_opts(tmp_path, fake_sources.all, test_emoji=600))
    assert not (tmp_path / "out").exists()


def _install_fake_npm(tmp_path: Path, fake: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "npm.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SRC", str(fake.twitter.parent))
    monkeypatch.setenv("NPM_LOG", str(log))
    return log


def test_npm_pack_fills_cache_then_reuses_it(
    tmp_path: Path, fake_sources: Any, monkeypatch: pytest.MonkeyPatch
):
    log = _install_fake_npm(tmp_path, fake_sources, monkeypatch)
    build_emoji_dataset(_opts(tmp_path, []))
    assert len(log.read_text().splitlines()) == 3
    checksums = json.loads((tmp_path / "cache" / CHECKSUMS_FILE).read_text())
    assert checksums["tabler-icons-3.51.0.tgz"] == sha256_file(fake_sources.tabler)
    build_emoji_dataset(_opts(tmp_path, [], force=True))
    assert len(log.read_text().splitlines()) == 3, "cached tarballs were fetched again"


def test_cache_checksum_mismatch_detected(
    tmp_path: Path, fake_sources: Any, monkeypatch: pytest.MonkeyPatch
):
    _install_fake_npm(tmp_path, fake_sources, monkeypatch)
    build_emoji_dataset(_opts(tmp_path, []))
    cached = tmp_path / "cache" / "emoji-datasource-google-16.0.0.tgz"
    cached.write_bytes(cached.read_bytes() + b"tampered")
    with pytest.raises(FetchError, match=r"sha256 .* differs .* delete the tarball"):
        build_emoji_dataset(_opts(tmp_path, [], force=True))


def test_npm_missing(tmp_path: Path, fake_sources: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(emoji_sources.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match=r"npm not found on PATH.*--from"):
        build_emoji_dataset(_opts(tmp_path, [fake_sources.twitter, fake_sources.google]))


def test_npm_failure_is_reported(
    tmp_path: Path, fake_sources: Any, monkeypatch: pytest.MonkeyPatch
):
    _install_fake_npm(tmp_path, fake_sources, monkeypatch)
    monkeypatch.setattr(emoji_sources, "SOURCES", (emoji_sources.Source("nope", "1.0.0"),))
    with pytest.raises(FetchError, match=r"npm pack nope@1\.0\.0 failed: npm error 404"):
        emoji_sources.fetch(emoji_sources.SOURCES, tmp_path / "cache")


def test_cli_build_and_validate(tmp_path: Path, fake_sources: Any, capsys):
    argv = ["data", "emoji", "--out", str(tmp_path / "out"), "--no-progress"]
    argv += ["--test-emoji", "3", "--test-icons", "1", "--cache", str(tmp_path / "cache")]
    for path in fake_sources.all:
        argv += ["--from", str(path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "qt->(ci,ct)" in printed
    assert main(["data", "validate", str(tmp_path / "out/test.jsonl")]) == 0
    assert "records, valid" in capsys.readouterr().out
    assert main(argv) == 1
    assert "already exists; pass --force" in capsys.readouterr().err


def test_variant_records_carry_their_near_misses_in_train_only(tmp_path: Path, fake_sources: Any):
    build_emoji_dataset(_opts(tmp_path, fake_sources.all, test_emoji=3, test_icons=1))
    train = [r for r in read_records(tmp_path / "out/train.jsonl") if r.task == "(qi,qt)->ci"]
    tones = [r for r in train if r.meta["source"] == "emoji"]
    assert tones, "the fake catalogue has skin-tone variants"
    for r in tones:
        negs = {n.image for n in r.negatives}
        style = r.query.image.parent.name
        assert r.query.image in negs  # the unchanged base is not the answer
        assert r.positive.image not in negs
        siblings = {o.positive.image for o in tones if o.meta == r.meta}
        assert siblings - {r.positive.image} <= negs  # every other variant in this style
        others = {n for n in negs if n.parent.name != style}
        assert all(n.name == r.positive.image.name for n in others)  # same variant, other style
    for r in (r for r in train if r.meta["source"] == "icons"):
        assert [n.image for n in r.negatives] == [r.query.image]  # the outline itself
    test = read_records(tmp_path / "out/test.jsonl")
    assert not [r for r in test if r.negatives]  # test pools are fixed; no hints there
