"""The JSONL record format shared by training and evaluation (see docs/data-format.md).

One JSON object per line::

    {"task": "qt->ci",
     "query": {"text": "grinning face", "instruction": "Find the image of this emoji or icon."},
     "positive": {"image": "images/twitter/1f600.png"},
     "negatives": [{"image": "images/google/1f601.png"}],
     "meta": {"identity": "emoji:1f600", "styles": ["twitter"]}}

Image paths in a file are relative to the file's directory; in memory they are absolute,
so records can be moved between files with :func:`write_records` re-relativising them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umr.atomic import atomic_open
from umr.errors import RecordError

# M-BEIR task id -> (query modality, candidate modality); 't' text, 'i' image, 'it' both.
TASK_MODALITIES: Mapping[str, tuple[str, str]] = {
    "qt->ci": ("t", "i"),
    "qt->ct": ("t", "t"),
    "qt->(ci,ct)": ("t", "it"),
    "qi->ct": ("i", "t"),
    "qi->ci": ("i", "i"),
    "(qi,qt)->ct": ("it", "t"),
    "(qi,qt)->ci": ("it", "i"),
    "(qi,qt)->(ci,ct)": ("it", "it"),
}
TASKS: tuple[str, ...] = tuple(TASK_MODALITIES)

_SIDE_KEYS = frozenset({"text", "image", "instruction"})
_RECORD_KEYS = frozenset({"task", "query", "positive", "negatives", "meta"})
_MODALITY_WORDS = {"t": "text only", "i": "an image only", "it": "both text and an image"}


@dataclass(frozen=True)
class Side:
    """One side of a pair: a query or a candidate. ``image`` is absolute once loaded."""

    text: str | None = None
    image: Path | None = None
    instruction: str | None = None

    def __post_init__(self) -> None:
        if self.text is None and self.image is None:
            raise RecordError("side: expected at least one of 'text' or 'image'")
        for name in ("text", "instruction"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise RecordError(f"side.{name}: expected a non-empty string")

    @property
    def key(self) -> tuple[str | None, str | None]:
        """Content identity (text, image path), ignoring the instruction."""
        return (self.text, None if self.image is None else str(self.image))

    @property
    def modality(self) -> str:
        """'t' (text only), 'i' (image only) or 'it' (both)."""
        if self.image is None:
            return "t"
        return "i" if self.text is None else "it"


@dataclass(frozen=True)
class Record:
    """One training/evaluation example: a query, its positive and optional hard negatives."""

    task: str
    query: Side
    positive: Side
    negatives: tuple[Side, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASK_MODALITIES:
            raise RecordError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        want_q, want_c = TASK_MODALITIES[self.task]
        _check_modality("query", self.query, want_q, self.task)
        _check_modality("positive", self.positive, want_c, self.task)
        for i, neg in enumerate(self.negatives):
            _check_modality(f"negatives[{i}]", neg, want_c, self.task)
        for name, side in self._candidates():
            if side.instruction is not None:
                raise RecordError(f"{name}.instruction: only the query may carry an instruction")

    def _candidates(self) -> list[tuple[str, Side]]:
        return [("positive", self.positive)] + [
            (f"negatives[{i}]", s) for i, s in enumerate(self.negatives)
        ]


def _check_modality(name: str, side: Side, want: str, task: str) -> None:
    if side.modality != want:
        raise RecordError(
            f"{name}: task {task} expects {_MODALITY_WORDS[want]}, "
            f"got {_MODALITY_WORDS[side.modality]}"
        )


def _string(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None and key not in obj:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _side_from_json(obj: Any, where: str, paths: _ImagePaths) -> Side:
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected an object with 'text' and/or 'image'")
    unknown = sorted(set(obj) - _SIDE_KEYS)
    if unknown:
        raise RecordError(f"{where}.{unknown[0]}: unknown key (allowed: text, image, instruction)")
    text, image = _string(obj, "text", where), _string(obj, "image", where)
    if text is None and image is None:
        raise RecordError(f"{where}: expected at least one of 'text' or 'image'")
    path = None if image is None else paths.resolve(image, where)
    return Side(text=text, image=path, instruction=_string(obj, "instruction", where))


class _ImagePaths:
    """Image paths resolved against a record file's folder, each distinct one once: a
    dataset names each image in many records (the emoji set: 106k uses of 11k files),
    and resolving and checking every use was most of the time reading it."""

    def __init__(self, base_dir: Path, check_images: bool) -> None:
        self.base_dir, self.check_images = base_dir, check_images
        self._seen: dict[str, Path] = {}

    def resolve(self, image: str, where: str) -> Path:
        path = self._seen.get(image)
        if path is not None:
            return path
        if Path(image).is_absolute():
            raise RecordError(f"{where}.image: expected a path relative to the file, got {image!r}")
        path = (self.base_dir / image).resolve()
        if self.check_images and not path.is_file():
            raise RecordError(f"{where}.image: file not found: {path}")
        self._seen[image] = path
        return path


def record_from_json(obj: Any, base_dir: Path, *, check_images: bool = True) -> Record:
    """Validate one decoded JSON line; image paths resolve against ``base_dir``.

    Raises:
        RecordError: ``field: what was expected`` (without the file location).
    """
    return _record(obj, _ImagePaths(base_dir, check_images))


def _record(obj: Any, paths: _ImagePaths) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(f"record: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _RECORD_KEYS)
    if unknown:
        raise RecordError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(_RECORD_KEYS))})")
    for key in ("task", "query", "positive"):
        if key not in obj:
            raise RecordError(f"{key}: missing required key")
    task = obj["task"]
    if not isinstance(task, str) or task not in TASK_MODALITIES:
        raise RecordError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    negatives = obj.get("negatives", [])
    if not isinstance(negatives, list):
        raise RecordError("negatives: expected a list of candidates")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise RecordError("meta: expected an object")
    return Record(
        task=task,
        query=_side_from_json(obj["query"], "query", paths),
        positive=_side_from_json(obj["positive"], "positive", paths),
        negatives=tuple(
            _side_from_json(n, f"negatives[{i}]", paths) for i, n in enumerate(negatives)
        ),
        meta=meta,
    )


def _side_to_json(side: Side, base_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if side.text is not None:
        out["text"] = side.text
    if side.image is not None:
        out["image"] = Path(os.path.relpath(side.image, base_dir)).as_posix()
    if side.instruction is not None:
        out["instruction"] = side.instruction
    return out


def record_to_json(record: Record, base_dir: Path) -> dict[str, Any]:
    """The JSON object for ``record``, with image paths relative to ``base_dir``."""
    out: dict[str, Any] = {
        "task": record.task,
        "query": _side_to_json(record.query, base_dir),
        "positive": _side_to_json(record.positive, base_dir),
    }
    if record.negatives:
        out["negatives"] = [_side_to_json(n, base_dir) for n in record.negatives]
    if record.meta:
        out["meta"] = dict(record.meta)
    return out


def read_records(path: str | os.PathLike[str], *, check_images: bool = True) -> list[Record]:
    """Read and validate a JSONL file; blank lines are skipped.

    Raises:
        RecordError: ``path:line: field: what was expected`` for the first bad line
            (bad JSON, unknown key, wrong modality, missing image file, ...).
    """
    path = Path(path)
    paths = _ImagePaths(path.resolve().parent, check_images)
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                records.append(_parse_line(line, path, lineno, paths))
    return records


def _parse_line(line: str, path: Path, lineno: int, paths: _ImagePaths) -> Record:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}:{lineno}: line: expected valid JSON ({exc.msg})") from None
    try:
        return _record(obj, paths)
    except RecordError as exc:
        raise RecordError(f"{path}:{lineno}: {exc}") from None


def write_records(path: str | os.PathLike[str], records: Iterable[Record]) -> int:
    """Write ``records`` as JSONL to ``path`` atomically; returns the number written.

    Image paths are written relative to ``path``'s directory.
    """
    path = Path(path)
    base_dir = path.parent.resolve()
    count = 0
    with atomic_open(path) as fh:
        for record in records:
            line = json.dumps(record_to_json(record, base_dir), ensure_ascii=False)
            fh.write(line.encode("utf-8") + b"\n")
            count += 1
    return count
