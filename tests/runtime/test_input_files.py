"""Reading items to index: text lines and JSONL, with errors that name file and line."""

from __future__ import annotations

import json

import pytest
from umr.runtime.input_files import read_items

from umr.errors import InputValueError


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_text_lines_use_line_numbers_as_ids_and_skip_blank_lines(tmp_path):
    items = read_items(_write(tmp_path, "a.txt", "first\n\n  second  \n"))
    assert [(i.id, i.text, i.line) for i in items] == [(1, "first", 1), (3, "second", 3)]


def test_jsonl_records_keep_ids_and_metadata(tmp_path):
    rows = [{"id": "a", "text": "x", "metadata": {"k": 1}}, {"text": "y"}]
    path = _write(tmp_path, "a.jsonl", "\n".join(json.dumps(r) for r in rows))
    items = read_items(path)
    assert [(i.id, i.text, i.metadata) for i in items] == [("a", "x", {"k": 1}), (2, "y", {})]


def test_jsonl_is_detected_from_content_without_extension(tmp_path):
    items = read_items(_write(tmp_path, "data", '{"text": "hello"}\n'))
    assert items[0].text == "hello"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": 1}', "'text' must be a string"),
        ('{"text": 5}', "'text' must be a string"),
        ('{"text": "a", "id": true}', "'id' must be an integer or a string"),
        ('{"text": "a", "id": 1.5}', "'id' must be an integer or a string"),
        ('{"text": "a", "metadata": [1]}', "'metadata' must be an object"),
        ('{"text": "\\ud800"}', "lone surrogate"),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path, line, expected):
    path = _write(tmp_path, "in.jsonl", '{"text": "fine"}\n' + line + "\n")
    with pytest.raises(InputValueError, match=expected) as err:
        read_items(path)
    assert f"{path}:2" in str(err.value)


def test_duplicate_id_names_both_lines(tmp_path):
    path = _write(tmp_path, "in.jsonl", '{"id": 7, "text": "a"}\n{"id": 7, "text": "b"}\n')
    with pytest.raises(InputValueError, match=r"in.jsonl:2: duplicate id 7 \(first on line 1\)"):
        read_items(path)


def test_empty_file_and_non_utf8_are_refused(tmp_path):
    with pytest.raises(InputValueError, match="no items"):
        read_items(_write(tmp_path, "empty.txt", "\n  \n"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(InputValueError, match="not UTF-8"):
        read_items(bad)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(InputValueError, match="format 'csv'"):
        read_items(_write(tmp_path, "a.txt", "x\n"), fmt="csv")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputValueError, match=r"input file not found: .*nope\.txt"):
        read_items(tmp_path / "nope.txt")
