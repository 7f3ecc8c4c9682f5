"""Read the emoji and icon catalogues from their tarballs and write the images.

Emoji PNGs are copied as they are (64x64); Tabler SVGs are rasterized to 64x64 RGBA PNGs
with resvg (black on transparent).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from umr.errors import DataError, FetchError

ICON_STYLES = ("outline", "filled")
ICON_SIZE = 64
# Fitzpatrick modifier code point -> the words Unicode CLDR uses for it.
SKIN_TONES = {
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Variant:
    """A skin-tone variant of an emoji: the modifier words and the image file per style."""

    modifier: str
    images: dict[str, str]


@dataclass(frozen=True)
class Emoji:
    """One emoji from emoji.json (names lowercased; keywords exclude the name)."""

    unified: str
    name: str
    keywords: tuple[str, ...]
    category: str
    images: dict[str, str]  # style -> image file name, only styles that have one
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Icon:
    """One Tabler icon (its text is the name with '-' read as spaces)."""

    name: str
    text: str
    category: str
    tags: tuple[str, ...]
    styles: tuple[str, ...]


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    try:
        with tarfile.open(path, "r:gz") as tf:
            for member in tf:
                if member.isfile():
                    yield member, tf
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise FetchError(f"{path}: corrupt tarball ({exc}); fetch it again") from None


def _read(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh: IO[bytes] | None = tf.extractfile(member)
    assert fh is not None  # _members yields regular files only
    return fh.read()


def read_json_member(path: Path, name: str) -> Any:
    """Decode the JSON file ``name`` inside a tarball (stops reading once found)."""
    for member, tf in _members(path):
        if member.name == name:
            try:
                return json.loads(_read(tf, member))
            except ValueError as exc:
                raise FetchError(f"{path}: {name} is not valid JSON ({exc})") from None
    raise FetchError(f"{path}: has no {name}")


def _words(raw: str) -> str:
    return " ".join(raw.replace("_", " ").replace("-", " ").lower().split())


def tone_words(key: str) -> str | None:
    """'1F3FE' -> 'medium-dark skin tone'; '1F3FB-1F3FC' -> 'light and medium-light skin tones'."""
    tones = [SKIN_TONES.get(part.upper()) for part in key.split("-")]
    if not tones or None in tones:
        return None
    if len(set(tones)) == 1:
        return f"{tones[0]} skin tone"
    return " and ".join(t for t in tones if t) + " skin tones"


def _emoji(entry: dict[str, Any], styles: tuple[str, ...]) -> Emoji:
    short = [str(s) for s in entry.get("short_names") or [entry["short_name"]]]
    name = " ".join(str(entry.get("name") or short[0].replace("_", " ")).lower().split())
    keywords = tuple(dict.fromkeys(k for k in map(_words, short) if k and k != name))
    variants = []
    for key, var in sorted((entry.get("skin_variations") or {}).items()):
        words = tone_words(key)
        images = {s: var["image"] for s in styles if var.get(f"has_img_{s}")}
        if words and images:
            variants.append(Variant(words, images))
    return Emoji(
        unified=str(entry["unified"]).lower(),
        name=name,
        keywords=keywords,
        category=f"{entry['category']} / {entry['subcategory']}",
        images={s: entry["image"] for s in styles if entry.get(f"has_img_{s}")},
        variants=tuple(variants),
    )


def parse_emoji(data: Any, styles: tuple[str, ...]) -> list[Emoji]:
    """Emoji from a decoded emoji.json; ``styles`` picks the ``has_img_<style>`` flags read.

    Raises:
        DataError: the file is not a list of emoji entries.
    """
    if not isinstance(data, list):
        raise DataError("emoji.json: expected a list of emoji")
    out = []
    for i, entry in enumerate(data):
        try:
            out.append(_emoji(entry, styles))
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"emoji.json[{i}]: malformed entry ({exc!r})") from None
    return [e for e in out if e.images]


def _icon(key: str, entry: dict[str, Any]) -> Icon:
    text = _words(key)
    tags = (_words(str(t)) for t in entry.get("tags") or [] if t is not None)
    return Icon(
        name=key,
        text=text,
        category=str(entry.get("category") or "icon"),
        tags=tuple(dict.fromkeys(t for t in tags if len(t) > 1 and t != text)),
        styles=tuple(s for s in ICON_STYLES if s in (entry.get("styles") or {})),
    )


def parse_icons(data: Any) -> list[Icon]:
    """Icons from a decoded Tabler icons.json (name -> {category, tags, styles})."""
    if not isinstance(data, dict):
        raise DataError("icons.json: expected an object of icon name -> details")
    try:
        icons = [_icon(key, entry) for key, entry in sorted(data.items())]
    except (TypeError, AttributeError) as exc:
        raise DataError(f"icons.json: malformed entry ({exc!r})") from None
    return [i for i in icons if "outline" in i.styles]


def extract_pngs(
    tarball: Path, style: str, wanted: set[str], dest: Path, progress: Progress
) -> set[str]:
    """Copy ``package/img/<style>/64/<file>`` for each wanted file into ``dest``.

    Returns the files written (a flagged image missing from the tarball is left out).
    """
    prefix = f"package/img/{style}/64/"
    dest.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for member, tf in _members(tarball):
        name = member.name[len(prefix) :] if member.name.startswith(prefix) else ""
        if name in wanted and name not in written:
            (dest / name).write_bytes(_read(tf, member))
            written.add(name)
            progress(1)
    return written


def rasterize(svg: str) -> bytes:
    """A 64x64 RGBA PNG of a Tabler SVG, drawn black on transparent."""
    import resvg_py

    # Tabler draws with currentColor; name the colour so it does not depend on resvg defaults.
    svg = svg.replace("currentColor", "#000000")
    # Skipping system fonts saves ~100 ms per call; the icons contain no text.
    return bytes(
        resvg_py.svg_to_bytes(
            svg_string=svg, width=ICON_SIZE, height=ICON_SIZE, skip_system_fonts=True
        )
    )


def rasterize_icons(
    tarball: Path, icons: list[Icon], dest: Path, progress: Progress
) -> set[tuple[str, str]]:
    """Write ``dest/<style>/<name>.png`` for every icon style; returns the (style, name) done."""
    wanted = {f"package/icons/{s}/{i.name}.svg": (s, i.name) for i in icons for s in i.styles}
    for style in ICON_STYLES:
        (dest / style).mkdir(parents=True, exist_ok=True)
    done: set[tuple[str, str]] = set()
    for member, tf in _members(tarball):
        key = wanted.get(member.name)
        if key is None or key in done:
            continue
        try:
            png = rasterize(_read(tf, member).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{tarball}: {member.name}: cannot rasterize ({exc})") from None
        (dest / key[0] / f"{key[1]}.png").write_bytes(png)
        done.add(key)
        progress(1)
    return done
