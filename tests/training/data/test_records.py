"""The JSONL record format: round trip, and one precise error per kind of bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from umr.training.data.records import (
    TASK_MODALITIES,
    TASKS,
    Record,
    Side,
    read_records,
    record_to_json,
    write_records,
)

from umr.errors import RecordError

GOOD = {
    "task": "qt->ci",
    "query": {"text": "grinning face", "instruction": "Find the image."},
    "positive": {"image": "img/a.png"},
    "negatives": [{"image": "img/b.png"}],
    "meta": {"identity": "emoji:1f600", "styles": ["twitter"]},
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "img" / name).write_bytes(b"png")
    return tmp_path


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _with(**changes: object) -> str:
    obj = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is None:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj)


def test_tasks_are_the_mbeir_ids():
    assert len(TASKS) == 8 and set(TASKS) == set(TASK_MODALITIES)
    assert TASK_MODALITIES["(qi,qt)->ci"] == ("it", "i")


def test_read_resolves_images_and_skips_blank_lines(data_dir: Path):
    path = _write_lines(data_dir / "r.jsonl", [json.dumps(GOOD), "", "  "])
    (record,) = read_records(path)
    assert record.task == "qt->ci"
    assert record.query == Side(text="grinning face", instruction="Find the image.")
    assert record.positive.image == (data_dir / "img/a.png").resolve()
    assert record.positive.modality == "i" and record.query.modality == "t"
    assert record.negatives[0].key == (None, str((data_dir / "img/b.png").resolve()))
    assert record.meta["identity"] == "emoji:1f600"


def test_write_then_read_round_trips(data_dir: Path):
    (record,) = read_records(_write_lines(data_dir / "r.jsonl", [json.dumps(GOOD)]))
    sub = data_dir / "sub"
    assert write_records(sub / "copy.jsonl", [record]) == 1
    line = json.loads((sub / "copy.jsonl").read_text())
    assert line["positive"]["image"] == "../img/a.png"  # re-relativised to the new file
    assert read_records(sub / "copy.jsonl") == [record]
    assert record_to_json(record, data_dir) == GOOD


def test_side_key_ignores_instruction():
    both = Side(text="x", image=Path("/a.png"))
    assert both.modality == "it"
    assert Side(text="x", image=Path("/a.png"), instruction="i").key == both.key


BAD_LINES = {
    "bad json": ("{not json", "line: expected valid JSON"),
    "not an object": ("[1, 2]", "record: expected a JSON object"),
    "unknown key": (_with(extra=1), "extra: unknown key"),
    "unknown side key": (_with(query={"text": "x", "caption": "y"}), "query.caption: unknown"),
    "missing positive": (_with(positive=None), "positive: missing required key"),
    "unknown task": (_with(task="t->i"), "task: expected one of qt->ci"),
    "wrong query modality": (
        _with(query={"image": "img/a.png"}),
        "query: task qt->ci expects text only, got an image only",
    ),
    "wrong negative modality": (
        _with(negatives=[{"text": "no"}]),
        "negatives[0]: task qt->ci expects an image only",
    ),
    "missing image": (_with(positive={"image": "img/nope.png"}), "positive.image: file not found"),
    "absolute image": (_with(positive={"image": "/abs.png"}), "expected a path relative"),
    "instruction on positive": (
        _with(positive={"image": "img/a.png", "instruction": "no"}),
        "positive.instruction: only the query may carry an instruction",
    ),
    "empty text": (_with(query={"text": ""}), "query.text: expected a non-empty string"),
    "blank text": (_with(query={"text": "  "}), "query.text: expected a non-empty string"),
    "number as text": (_with(query={"text": 3}), "query.text: expected a non-empty string"),
    "empty side": (_with(query={"instruction": "x"}), "query: expected at least one of"),
    "negatives not a list": (_with(negatives={"image": "img/a.png"}), "negatives: expected a list"),
    "meta not an object": (_with(meta=[1]), "meta: expected an object"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_bad_line_names_file_line_and_field(data_dir: Path, kind: str):
    line, expected = BAD_LINES[kind]
    path = _write_lines(data_dir / "r.jsonl", [json.dumps(GOOD), "", line])
    with pytest.raises(RecordError) as info:
        read_records(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    assert expected in message, message


def test_check_images_off_accepts_missing_files(tmp_path: Path):
    path = _write_lines(tmp_path / "r.jsonl", [json.dumps(GOOD)])
    (record,) = read_records(path, check_images=False)
    assert record.positive.image == (tmp_path / "img/a.png").resolve()


def test_record_constructor_validates():
    with pytest.raises(RecordError, match="positive: task qi->ct expects text only"):
        Record("qi->ct", Side(image=Path("/q.png")), Side(image=Path("/c.png")))
    with pytest.raises(RecordError, match="side: expected at least one"):
        Side()


def test_cli_validate_reports_bad_line_in_one_line(data_dir: Path, capsys):
    from umr.runtime.cli.main import main

    path = _write_lines(data_dir / "r.jsonl", [json.dumps(GOOD), _with(task="nope")])
    assert main(["data", "validate", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"umr: error: {path}:2: task:") and "\n" not in err
    assert main(["data", "validate", str(data_dir / "missing.jsonl")]) == 1
