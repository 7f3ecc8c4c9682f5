"""Images in embed-corpus: JSONL and Parquet rows with image paths, text+image pairs, the
Embedder's own vectors, failing images named by id, and text-only bundles refused early."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from umr.runtime import Embedder
from umr.runtime.cli.main import main
from umr.runtime.corpus_embed.pipeline import EmbedBatchError
from umr.runtime.corpus_embed.reader import read_docs, scan
from umr.runtime.corpus_embed.run import embed_corpus
from umr.runtime.corpus_embed.vectors import MANIFEST_NAME, read_vectors, read_vectors_info

from umr.bundle import read_manifest
from umr.errors import InputValueError


def draw(path: Path, colour: tuple[int, int, int, int], size: tuple[int, int] = (10, 8)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGBA", size, colour)
    img.paste((255, 255, 0, 255), (2, 2, 5, 5))
    img.save(path)
    return path


@pytest.fixture
def image_corpus(tmp_path: Path, make_jsonl) -> Path:  # type: ignore[no-untyped-def]
    """A JSONL file mixing texts, images (relative and absolute paths) and pairs."""
    root = tmp_path / "in"
    for i in range(6):
        draw(root / "img" / f"{i}.png", (40 * i, 200 - 30 * i, 90, 255 if i % 2 else 0))
    outside = draw(tmp_path / "elsewhere" / "abs.png", (9, 9, 9, 255))
    rows = []
    for i in range(30):
        kind = i % 3
        row: dict = {"id": f"r{i}"}
        if kind in (0, 2):
            row["text"] = f"the python list {i}"
        if kind in (1, 2):
            row["image"] = f"img/{i % 6}.png"
        if i % 4 == 0:
            row["metadata"] = {"n": i}
        rows.append(row)
    rows.append({"id": "abs", "image": str(outside)})
    return make_jsonl(root / "docs.jsonl", rows)


def read_all(out: Path):  # type: ignore[no-untyped-def]
    batches = list(read_vectors(out))
    return [i for b in batches for i in b.ids], np.concatenate([b.vectors for b in batches])


def expected(bundle: Path, corpus: Path) -> np.ndarray:
    """Each row through the Embedder method of its kind, one at a time."""
    e = Embedder.load(bundle, threads=1)
    out = []
    for line in corpus.read_text().splitlines():
        row = json.loads(line)
        image = row.get("image")
        image = None if image is None else corpus.parent / image
        if image is None:
            out.append(e.embed_text([row["text"]]))
        elif "text" in row:
            out.append(e.embed_fused([row["text"]], [image]))
        else:
            out.append(e.embed_image([image]))
    return np.concatenate(out)


def test_reader_carries_absolute_image_paths(image_corpus: Path) -> None:
    corpus = scan(image_corpus)
    assert (corpus.count, corpus.image_count) == (31, 21)
    docs = next(read_docs(corpus.files[0]))
    assert docs["image"][0].as_py() is None and docs["text"][1].as_py() == ""
    assert docs["image"][1].as_py() == str(image_corpus.parent.resolve() / "img" / "1.png")
    assert docs["image"][30].as_py().endswith("elsewhere/abs.png")
    assert corpus.describe()["image_rows"] == 21


def test_mixed_corpus_end_to_end_equals_the_embedder(mm_bundle, image_corpus, tmp_path) -> None:
    out = tmp_path / "v"
    result = embed_corpus(
        image_corpus, out, bundle=mm_bundle.path, rows_per_batch=8, batch_size=3, progress=False
    )
    assert result.count == 31  # count in = count out
    ids, vecs = read_all(out)
    assert ids == [f"r{i}" for i in range(30)] + ["abs"]
    np.testing.assert_allclose(vecs, expected(mm_bundle.path, image_corpus), atol=1e-5)
    info = read_vectors_info(out)
    assert info["input"]["image_rows"] == 21
    files = read_manifest(mm_bundle.path).files
    assert info["image_model_sha256"] == files["multimodal.onnx"]
    assert info["model_sha256"] == files["model.onnx"]


def test_parquet_image_column(mm_bundle, tmp_path, make_parquet) -> None:
    root = tmp_path / "pq"
    draw(root / "a.png", (200, 0, 0, 255))
    draw(root / "b.png", (0, 0, 200, 128))
    path = make_parquet(
        root / "t.parquet",
        {"id": [1, 2, 3], "text": ["the list", None, "a text"], "pic": ["a.png", "b.png", None]},
    )
    from umr.runtime.corpus_embed.reader import Fields

    out = tmp_path / "v"
    embed_corpus(path, out, bundle=mm_bundle.path, fields=Fields(image="pic"), progress=False)
    _, vecs = read_all(out)
    e = Embedder.load(mm_bundle.path, threads=1)
    want = np.concatenate(
        [
            e.embed_fused(["the list"], [root / "a.png"]),
            e.embed_image([root / "b.png"]),
            e.embed_text(["a text"]),
        ]
    )
    np.testing.assert_allclose(vecs, want, atol=1e-5)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"text": ["a", None]}, r"t\.parquet:row 2: 'text' is null"),
        (
            {"text": ["a", None], "image": ["x.png", None]},
            r"row 2: 'text' is null and the row has no image",
        ),
        ({"text": ["a"], "image": ["gone.png"]}, r"row 1: image file not found: .*gone\.png"),
        ({"text": ["a"], "image": [" "]}, r"row 1: 'image' must be a non-empty path"),
        ({"text": ["a"], "image": [3]}, r"column 'image' is int64, expected string"),
    ],
)
def test_bad_parquet_images_name_the_row(tmp_path, make_parquet, columns, match) -> None:  # type: ignore[no-untyped-def]
    draw(tmp_path / "x.png", (1, 2, 3, 255))
    with pytest.raises(InputValueError, match=match):
        scan(make_parquet(tmp_path / "t.parquet", columns))


def test_missing_image_file_is_named_before_anything_runs(mm_bundle, tmp_path, make_jsonl) -> None:  # type: ignore[no-untyped-def]
    path = make_jsonl(tmp_path / "in" / "d.jsonl", [{"text": "a"}, {"image": "nope.png"}])
    out = tmp_path / "v"
    with pytest.raises(InputValueError, match=r"d\.jsonl:2: image file not found"):
        embed_corpus(path, out, bundle=mm_bundle.path, progress=False)
    assert not out.exists()


def test_text_only_bundle_refuses_images_up_front(tiny_bundle, image_corpus, tmp_path) -> None:
    out = tmp_path / "v"
    with pytest.raises(InputValueError, match=r"21 rows carry an image.*'tiny' has no image graph"):
        embed_corpus(image_corpus, out, bundle=tiny_bundle.path, progress=False)
    assert not out.exists()


def test_every_failing_image_of_a_batch_is_named(mm_bundle, tmp_path, make_jsonl) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "in"
    draw(root / "ok.png", (1, 2, 3, 255))
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "cut.png").write_bytes(draw(root / "full.png", (5, 5, 5, 255)).read_bytes()[:40])
    rows = [
        {"id": 1, "image": "ok.png"},
        {"id": "x", "text": "a pair", "image": "bad.png"},
        {"id": 3, "text": "text"},
        {"id": "y", "image": "cut.png"},
    ]
    path = make_jsonl(root / "d.jsonl", rows)
    out = tmp_path / "v"
    with pytest.raises(EmbedBatchError) as info:
        embed_corpus(path, out, bundle=mm_bundle.path, retries=0, progress=False)
    message = str(info.value)
    assert "2 image(s) cannot be embedded" in message
    assert "id 'x' (" in message and "bad.png): " in message
    assert "id 'y' (" in message and "cut.png): " in message
    assert "id 1 " not in message
    assert not (out / MANIFEST_NAME).exists()


def test_cli_with_images(mm_bundle, image_corpus, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["embed-corpus", "--bundle", str(mm_bundle.path), "--input", str(image_corpus)]
    argv += ["--out", str(tmp_path / "v"), "--no-progress", "--num-cpus", "1"]
    assert main(argv) == 0
    assert "embedded 31 rows (dim 8)" in capsys.readouterr().err
    parts = sorted((tmp_path / "v").glob("part-*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in parts)
    assert table.num_rows == 31
