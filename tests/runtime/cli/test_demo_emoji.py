"""`umr demo` with a multimodal bundle: the emoji test split as corpus, three kinds of query."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from umr.runtime.cli.main import main

INSTRUCTIONS = {  # short: the tiny bundle has 16 tokens and spells unknown words letter by letter
    "qt->ci": "the list",
    "qi->ci": "a list",
    "(qi,qt)->ci": "this text",
}


def _record(task: str, query: dict, positive: str) -> dict:
    query = {**query, "instruction": INSTRUCTIONS[task]}
    return {"task": task, "query": query, "positive": {"image": positive}, "meta": {}}


@pytest.fixture
def emoji_data(tmp_path: Path) -> Path:
    """A miniature emoji split: 4 emoji in two styles, one with a skin-tone variant."""
    data = tmp_path / "emoji"
    rng = np.random.default_rng(0)
    codes = ["1f600", "1f3c2", "2764", "1f44d"]
    files = [f"{s}/{c}.png" for s in ("google", "twitter") for c in codes]
    files += ["google/1f3c2-1f3fe.png", "twitter/1f3c2-1f3fe.png"]
    for name in files:
        (data / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)).save(
            data / "images" / name
        )
    names = ["grinning face", "snowboarder", "red heart", "thumbs up"]
    rows = []
    for code, name in zip(codes, names, strict=True):
        for style in ("twitter", "google"):
            rows.append(_record("qt->ci", {"text": name}, f"images/{style}/{code}.png"))
        rows.append(
            _record("qi->ci", {"image": f"images/twitter/{code}.png"}, f"images/google/{code}.png")
        )
    for style in ("twitter", "google"):
        query = {"text": "medium-dark skin tone", "image": f"images/{style}/1f3c2.png"}
        rows.append(_record("(qi,qt)->ci", query, f"images/{style}/1f3c2-1f3fe.png"))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_multimodal_demo_runs_and_caches_its_index(capsys, tmp_path, mm_bundle, emoji_data):
    argv = ["demo", "--bundle", str(mm_bundle.path), "--data", str(emoji_data)]
    argv += ["--workdir", str(tmp_path / "work"), "-k", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(fp32, dim 8, text, image, text+image)" in out
    assert "embedded and indexed 5 Google emoji drawings" in out
    assert "== text -> image" in out and "== image -> image" in out
    assert "? 'grinning face'    (answer: 1f600)" in out
    assert "? [twitter/1f600.png]    (answer: 1f600)" in out
    assert "? [google/1f3c2.png] + 'medium-dark skin tone'    (answer: 1f3c2-1f3fe)" in out
    assert "snowboarder: medium-dark skin tone" in out  # a variant is named after its base
    assert re.search(r"text\+image -> image +1 queries +R@1 [01]\.\d{3} +R@5", out)
    assert re.search(r"text -> image +4 queries", out)
    assert out.count("embed   p50") == 3 and out.count("search  p50") == 3
    assert main(argv) == 0
    assert "loaded cached index" in capsys.readouterr().out


def test_multimodal_demo_without_data_says_how_to_build_it(capsys, tmp_path, mm_bundle):
    argv = ["demo", "--bundle", str(mm_bundle.path), "--data", str(tmp_path / "none")]
    assert main([*argv, "--workdir", str(tmp_path / "w")]) == 1
    assert "umr data emoji --out" in capsys.readouterr().err
