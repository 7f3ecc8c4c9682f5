"""``as_test_split``: training identities' records cut to the kinds the test split holds."""

from __future__ import annotations

from pathlib import Path

from umr.training.data.emoji_extract import Emoji, Icon, Variant
from umr.training.data.emoji_tasks import as_test_split, build_records, emoji_id, icon_id


def _catalogue() -> tuple[list[Emoji], list[Icon]]:
    both = {"twitter": "a.png", "google": "a.png"}
    emoji = [
        Emoji(
            "1f44d",
            "thumbs up",
            ("good", "hand"),
            "People",
            both,
            (Variant("dark skin tone", {"twitter": "a-d.png", "google": "a-d.png"}),),
        ),
        Emoji("1f44e", "thumbs down", ("bad", "hand"), "People", {"twitter": "b.png"}, ()),
        Emoji("1f600", "grinning face", ("smile", "good"), "Smileys", both, ()),
    ]
    icons = [
        Icon("heart", "heart", "Health", ("love", "hand"), ("outline", "filled")),
        Icon("star", "star", "Shapes", ("favourite",), ("outline",)),
    ]
    return emoji, icons


def _kinds(records: list) -> list[tuple]:
    return [(r.task, r.query, r.positive) for r in records]


def test_training_records_cut_down_equal_the_test_records_of_the_same_identities() -> None:
    emoji, icons = _catalogue()
    every = {emoji_id(e) for e in emoji} | {icon_id(i) for i in icons}
    train, _ = build_records(emoji, icons, Path("/img"), test_ids=set())
    _, test = build_records(emoji, icons, Path("/img"), test_ids=every)
    assert len(train) > len(test)  # keywords, both directions, ambiguous words
    assert _kinds(as_test_split(train)) == _kinds(test)
    assert as_test_split(test) == test  # the test split itself is left as it is
    kept = {r.query.text for r in as_test_split(train) if r.task == "qt->ct"}
    assert kept == {"bad", "smile", "love", "favourite"}  # "good", "hand": two identities
