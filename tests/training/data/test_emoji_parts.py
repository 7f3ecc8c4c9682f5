"""Pure pieces of the emoji builder: skin-tone words, the seeded split, catalogue parsing."""

from __future__ import annotations

import pytest
from umr.training.data.emoji_extract import parse_emoji, parse_icons, tone_words
from umr.training.data.emoji_sources import TABLER, TWITTER
from umr.training.data.emoji_tasks import TASK_INSTRUCTIONS, split_identities
from umr.training.data.records import TASKS

from umr.errors import DataError


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("1F3FB", "light skin tone"),
        ("1f3fe", "medium-dark skin tone"),
        ("1F3FB-1F3FC", "light and medium-light skin tones"),
        ("1F3FF-1F3FF", "dark skin tone"),
        ("1F3FB-ZZZ", None),
    ],
)
def test_tone_words(key: str, words: str | None):
    assert tone_words(key) == words


def test_split_is_seeded_and_independent_of_order():
    ids = [f"emoji:{i}" for i in range(50)]
    first = split_identities(ids, 10, seed=0, what="emoji")
    assert len(first) == 10
    assert split_identities(list(reversed(ids)), 10, seed=0, what="emoji") == first
    assert split_identities(ids, 10, seed=1, what="emoji") != first
    with pytest.raises(DataError, match="asked for 51"):
        split_identities(ids, 51, seed=0, what="emoji")


def test_every_task_has_an_instruction():
    assert set(TASK_INSTRUCTIONS) == set(TASKS)


def test_tarball_names_match_npm_pack():
    assert TABLER.tarball_name == "tabler-icons-3.51.0.tgz"
    assert TWITTER.tarball_name == "emoji-datasource-twitter-16.0.0.tgz"


def test_parse_emoji_names_keywords_and_styles():
    entry = {
        "name": "GRINNING  FACE",
        "unified": "1F600",
        "image": "1f600.png",
        "short_names": ["grinning", "grinning_face", "big-grin"],
        "category": "Smileys & Emotion",
        "subcategory": "face-smiling",
        "has_img_twitter": True,
        "has_img_google": False,
    }
    (emoji,) = parse_emoji([entry], ("twitter", "google"))
    assert emoji.name == "grinning face"
    assert emoji.keywords == ("grinning", "big grin")  # the name itself is not a keyword
    assert emoji.images == {"twitter": "1f600.png"}
    assert emoji.category == "Smileys & Emotion / face-smiling"
    with pytest.raises(DataError, match=r"emoji.json\[0\]: malformed"):
        parse_emoji([{"name": "x"}], ("twitter",))


def test_parse_icons_cleans_tags_and_needs_outline():
    tags = ["a", "A B", 42, None, "split", "split"]  # 1-letter, the name, a number, null, a twin
    icons = parse_icons(
        {
            "a-b": {"category": "Text", "tags": tags, "styles": {"outline": {}}},
            "only-filled": {"category": "X", "tags": [], "styles": {"filled": {}}},
        }
    )
    assert [(i.name, i.text, i.tags) for i in icons] == [("a-b", "a b", ("42", "split"))]
