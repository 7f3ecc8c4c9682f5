"""`umr index build` and `umr search` with images and text+image pairs (tiny multimodal bundle)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from umr.runtime.cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _save(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Image-only, text-only and pair records; image paths relative to the JSONL file."""
    data = tmp_path / "data"
    for i in range(4):
        _save(data / "images" / f"{i}.png", i)
    rows = [
        {"id": "img0", "image": "images/0.png", "metadata": {"kind": "image"}},
        {"id": "img1", "image": "images/1.png"},
        {"id": "txt", "text": "the python list"},
        {"id": "pair2", "text": "a query text", "image": "images/2.png"},
        {"id": "pair3", "text": "this is it", "image": "images/3.png"},
    ]
    return _write_jsonl(data / "corpus.jsonl", rows)


def _build(capsys, bundle: Path, corpus: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    argv = ["index", "build", "--bundle", str(bundle), "--input", str(corpus), "--out", str(out)]
    return _run(capsys, *argv, "--no-progress", *extra)


def _search(capsys, bundle: Path, index: Path, *query: str) -> dict:
    argv = ["search", "--bundle", str(bundle), "--index", str(index), "-k", "5", "--json"]
    code, out, err = _run(capsys, *argv, *query)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("exact", [False, True])
def test_build_then_search_by_image_text_and_both(capsys, tmp_path, mm_bundle, corpus, exact):
    out = tmp_path / "idx"
    code, _, err = _build(capsys, mm_bundle.path, corpus, out, *(["--exact"] if exact else []))
    assert code == 0, err
    assert "indexed 5 items" in err
    info = json.loads((out / "umr-build.json").read_text())
    assert info["bundle"] == "tiny-mm" and len(info["image_model_sha256"]) == 64
    images = corpus.parent / "images"

    got = _search(capsys, mm_bundle.path, out, "--image", str(images / "1.png"))
    top = got["hits"][0]
    assert got["query"] == {"image": str(images / "1.png")}
    assert top["id"] == "img1" and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"] == {"image": str((images / "1.png").resolve())}

    got = _search(capsys, mm_bundle.path, out, "--text", "the python list")
    assert got["hits"][0]["id"] == "txt" and got["query"] == "the python list"
    assert got["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)

    got = _search(
        capsys, mm_bundle.path, out, "--text", "this is it", "--image", str(images / "3.png")
    )
    top = got["hits"][0]
    assert top["id"] == "pair3" and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"]["text"] == "this is it"

    got = _search(capsys, mm_bundle.path, out, "--image", str(images / "0.png"))
    assert got["hits"][0]["metadata"]["metadata"] == {"kind": "image"}


def test_table_output_shows_images(capsys, tmp_path, mm_bundle, corpus):
    out = tmp_path / "idx"
    assert _build(capsys, mm_bundle.path, corpus, out)[0] == 0
    image = str(corpus.parent / "images" / "2.png")
    argv = ["search", "--bundle", str(mm_bundle.path), "--index", str(out)]
    code, text, err = _run(capsys, *argv, "--text", "a query text", "--image", image)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0] == f"query: a query text + [image {image}]"
    assert "pair2" in lines[2] and "a query text [image " in lines[2]


def test_instruction_changes_an_image_query(capsys, tmp_path, mm_bundle, corpus):
    out = tmp_path / "idx"
    assert _build(capsys, mm_bundle.path, corpus, out)[0] == 0
    image = str(corpus.parent / "images" / "0.png")
    plain = _search(capsys, mm_bundle.path, out, "--image", image)["hits"][0]
    instructed = _search(capsys, mm_bundle.path, out, "--image", image, "--instruction", "find")
    assert instructed["hits"][0]["score"] < plain["score"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x"}, "'text' must be a string \\(or give an 'image'\\)"),
        ({"image": 5}, "'image' must be a non-empty path string"),
        ({"image": " "}, "'image' must be a non-empty path string"),
        ({"image": "images/nope.png"}, "image file not found: .*nope.png"),
        ({"text": 3, "image": "images/0.png"}, "'text' must be a string"),
    ],
)
def test_bad_record_is_named_by_line(capsys, tmp_path, mm_bundle, corpus, row, message):
    bad = _write_jsonl(corpus.parent / "bad.jsonl", [{"image": "images/0.png"}, row])
    out = tmp_path / "idx"
    code, _, err = _build(capsys, mm_bundle.path, bad, out)
    assert code == 1 and err.count("\n") == 1
    assert "bad.jsonl:2: " in err
    assert re.search(message, err), err
    assert not out.exists()


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an image", "not a readable image"),
        (None, "not a readable image"),  # a truncated PNG: its checksums are checked first
        (_jpeg(0)[:1500], "truncated"),  # a truncated JPEG passes the header check, fails decode
    ],
)
def test_unreadable_image_is_named_by_line_and_nothing_is_written(
    capsys, tmp_path, mm_bundle, corpus, content, message
):
    images = corpus.parent / "images"
    if content is None:
        png = _save(images / "big.png", 9).read_bytes()
        content = png[: len(png) // 2]
    (images / "bad.img").write_bytes(content)
    rows = [{"image": "images/0.png"}, {"text": "ok"}, {"text": "pair", "image": "images/bad.img"}]
    bad = _write_jsonl(corpus.parent / "bad.jsonl", rows)
    out = tmp_path / "idx"
    code, _, err = _build(capsys, mm_bundle.path, bad, out)
    assert code == 1 and err.count("\n") == 1, err
    assert f"bad.jsonl:3: image {images / 'bad.img'}: " in err and message in err
    assert not out.exists()


def test_text_bundle_refuses_image_records_naming_the_line(capsys, tmp_path, tiny_bundle, corpus):
    out = tmp_path / "idx"
    code, _, err = _build(capsys, tiny_bundle.path, corpus, out)
    assert code == 1
    assert "corpus.jsonl:1: a image item, but bundle 'tiny' embeds text only" in err
    assert not out.exists()


def test_search_argument_errors(capsys, tmp_path, mm_bundle, tiny_bundle, corpus):
    out = tmp_path / "idx"
    assert _build(capsys, mm_bundle.path, corpus, out)[0] == 0
    image = str(corpus.parent / "images" / "0.png")
    base = ["search", "--bundle", str(mm_bundle.path), "--index", str(out)]
    cases = [
        ([], "give a query"),
        (["q", "--text", "t"], "not both"),
        (["--image", str(tmp_path / "nope.png")], "--image .*nope.png: file not found"),
    ]
    for extra, message in cases:
        code, _, err = _run(capsys, *base, *extra)
        assert code == 1 and re.search(message, err), (extra, err)
    (tmp_path / "bad.png").write_bytes(b"junk")
    code, _, err = _run(capsys, *base, "--image", str(tmp_path / "bad.png"))
    assert code == 1 and f"--image {tmp_path / 'bad.png'}: not an image" in err
    text_only = ["search", "--bundle", str(tiny_bundle.path), "--index", str(out)]
    code, _, err = _run(capsys, *text_only, "--image", image)
    assert code == 1 and "needs a multimodal bundle; 'tiny' embeds text only" in err


def test_text_lines_still_index_with_a_multimodal_bundle(capsys, tmp_path, mm_bundle):
    lines = tmp_path / "docs.txt"
    lines.write_text("the python list\na query text\n", encoding="utf-8")
    out = tmp_path / "idx"
    assert _build(capsys, mm_bundle.path, lines, out)[0] == 0
    got = _search(capsys, mm_bundle.path, out, "a query text")
    assert got["hits"][0]["id"] == 2
