"""Tiny fake npm tarballs shaped like the real emoji-datasource and @tabler/icons packages."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
N_EMOJI = 12
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" '
    'fill="none" stroke="currentColor" stroke-width="2"><path d="M4 4l16 16"/></svg>'
)
FILLED_SVG = SVG.replace('fill="none"', 'fill="currentColor"')


@dataclass(frozen=True)
class FakeSources:
    """Paths of the three fake tarballs and the one image left out of the google tarball."""

    twitter: Path
    google: Path
    tabler: Path
    missing_google: str

    @property
    def all(self) -> list[Path]:
        return [self.twitter, self.google, self.tabler]


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 200, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


def write_tarball(path: Path, files: dict[str, bytes]) -> Path:
    """A gzip tarball holding ``files`` (archive name -> bytes)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def package_json(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version}).encode()


def emoji_entry(i: int) -> dict[str, Any]:
    """Emoji 0-2 have five skin tones, 3 has a two-person tone, 4 has no google image, 5 no name."""
    code = f"1F{0x600 + i:03X}"
    entry: dict[str, Any] = {
        "name": None if i == 5 else f"FACE NUMBER {i}",
        "unified": code,
        "image": f"{code.lower()}.png",
        "short_name": f"face_number_{i}",
        "short_names": [f"face_number_{i}", f"smile_kw_{i}"],
        "category": "Smileys & Emotion",
        "subcategory": "face-smiling",
        "has_img_twitter": True,
        "has_img_google": i != 4,
    }
    keys = TONES if i < 3 else ("1F3FB-1F3FF",) if i == 3 else ()
    if keys:
        entry["skin_variations"] = {
            k: {
                "unified": f"{code}-{k}",
                "image": f"{code.lower()}-{k.lower()}.png",
                "has_img_twitter": True,
                "has_img_google": True,
            }
            for k in keys
        }
    return entry


def emoji_images(entries: list[dict[str, Any]], style: str) -> list[str]:
    flag = f"has_img_{style}"
    names = [e["image"] for e in entries if e[flag]]
    for e in entries:
        names += [v["image"] for v in (e.get("skin_variations") or {}).values() if v[flag]]
    return names


def emoji_tarball(path: Path, style: str, version: str = "16.0.0", skip: str = "") -> Path:
    entries = [emoji_entry(i) for i in range(N_EMOJI)]
    files = {
        "package/package.json": package_json(f"emoji-datasource-{style}", version),
        "package/emoji.json": json.dumps(entries).encode(),
    }
    png = png_bytes()
    for name in emoji_images(entries, style):
        if name != skip:
            files[f"package/img/{style}/64/{name}"] = png
    return write_tarball(path, files)


def icons_tarball(path: Path, version: str = "3.51.0") -> Path:
    icons = {
        "arrow-up": {"category": "Arrows", "tags": ["up", "north", 911, None], "filled": True},
        "bell-ringing": {"category": "System", "tags": ["alarm", "a"], "filled": False},
        "cloud-rain": {"category": "Weather", "tags": ["rain", "Cloud Rain"], "filled": False},
    }
    meta = {}
    files = {"package/package.json": package_json("@tabler/icons", version)}
    for name, spec in icons.items():
        styles = {"outline": {"version": "1.0"}}
        files[f"package/icons/outline/{name}.svg"] = SVG.encode()
        if spec["filled"]:
            styles["filled"] = {"version": "2.0"}
            files[f"package/icons/filled/{name}.svg"] = FILLED_SVG.encode()
        meta[name] = {
            "name": name,
            "category": spec["category"],
            "tags": spec["tags"],
            "styles": styles,
        }
    files["package/icons.json"] = json.dumps(meta).encode()
    return write_tarball(path, files)


@pytest.fixture
def fake_sources(tmp_path: Path) -> FakeSources:
    """The three fake tarballs; one flagged google image is missing from its tarball."""
    src = tmp_path / "tarballs"
    src.mkdir()
    missing = "1f601-1f3fd.png"
    return FakeSources(
        twitter=emoji_tarball(src / "emoji-datasource-twitter-16.0.0.tgz", "twitter"),
        google=emoji_tarball(src / "emoji-datasource-google-16.0.0.tgz", "google", skip=missing),
        tabler=icons_tarball(src / "tabler-icons-3.51.0.tgz"),
        missing_google=missing,
    )


@pytest.fixture
def make_emoji_tarball() -> Callable[..., Path]:
    """:func:`emoji_tarball`, for tests that need a variant (another version)."""
    return emoji_tarball
