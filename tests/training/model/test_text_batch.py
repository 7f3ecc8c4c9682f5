"""TextBatcher's row widths, which ``encode_sides`` sorts by."""

from __future__ import annotations

from pathlib import Path

import pytest
from umr.training.model.text_batch import TextBatcher


@pytest.mark.parametrize(
    ("text", "instruction"),
    [
        ("red circle", None),
        (None, None),
        (None, "find the picture"),
        ("red blue green circle square triangle with a cross " * 3, None),
        ("red circle", "find the picture " * 6),
    ],
)
def test_row_length_is_the_width_encode_gives(
    tiny_backbone: Path, text: str | None, instruction: str | None
) -> None:
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 12)
    width = tb.encode([text], [instruction])["input_ids"].shape[1]
    assert tb.row_length(text, instruction) == width
