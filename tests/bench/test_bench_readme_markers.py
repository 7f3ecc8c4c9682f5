import pytest
from umr.bench.report_md import END, START, replace_block, update_readme

from umr.errors import InputValueError


def test_replace_is_idempotent():
    text = f"head\n{START}\nold stuff\n{END}\ntail\n"
    once = replace_block(text, "| a | b |")
    assert once == f"head\n{START}\n| a | b |\n{END}\ntail\n"
    assert replace_block(once, "| a | b |") == once


def test_missing_markers_name_the_file(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("no markers here\n")
    with pytest.raises(InputValueError, match=r"README\.md: expected exactly one"):
        update_readme(path, "x")
    assert path.read_text() == "no markers here\n"


def test_repeated_or_reversed_markers_are_refused():
    with pytest.raises(InputValueError, match="found 2 and 1"):
        replace_block(f"{START}{START}{END}", "x")
    with pytest.raises(InputValueError, match="comes before"):
        replace_block(f"{END}\n{START}", "x")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputValueError, match=r"nope\.md"):
        update_readme(tmp_path / "nope.md", "x")
