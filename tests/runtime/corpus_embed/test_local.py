"""The local engine end to end on the tiny bundle: output, CLI, retries, failures, safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from umr.runtime import Embedder
from umr.runtime.cli.main import main
from umr.runtime.corpus_embed import local
from umr.runtime.corpus_embed.faults import FAULT_ENV
from umr.runtime.corpus_embed.pipeline import EmbedBatchError
from umr.runtime.corpus_embed.reader import DEFAULT_FIELDS, Fields, read_docs, scan
from umr.runtime.corpus_embed.run import CountMismatchError, embed_corpus
from umr.runtime.corpus_embed.vectors import (
    MANIFEST_NAME,
    VectorsError,
    read_vectors,
    read_vectors_info,
)

from umr.errors import InputValueError, UnknownVariantError

PQ = Fields(text="body", id="doc_id")


def expected(bundle: Path, corpus_path: Path, fields: Fields = DEFAULT_FIELDS):  # type: ignore[no-untyped-def]
    """Ids and vectors computed straight from the reader and the embedder."""
    corpus = scan(corpus_path, fields)
    docs = pa.concat_tables(t for f in corpus.files for t in read_docs(f, fields))
    kinds = docs["id_type"].to_pylist()
    ids = [int(i) if k == "int" else i for i, k in zip(docs["id"].to_pylist(), kinds, strict=True)]
    return ids, Embedder.load(bundle, threads=1).embed_text(docs["text"].to_pylist())


def read_all(out: Path):  # type: ignore[no-untyped-def]
    batches = list(read_vectors(out))
    ids = [i for b in batches for i in b.ids]
    meta = [m for b in batches for m in b.metadata]
    return ids, np.concatenate([b.vectors for b in batches]), meta


def test_directory_end_to_end(tiny_bundle, corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors"
    result = embed_corpus(
        corpus_dir, out, bundle=tiny_bundle.path, fields=PQ, rows_per_file=100, progress=False
    )
    assert (result.count, result.dim, result.retried_rows, result.engine) == (370, 8, 0, "local")
    ids, vecs, meta = read_all(out)
    want_ids, want_vecs = expected(tiny_bundle.path, corpus_dir, PQ)
    assert ids == want_ids and ids[:2] == ["doc-0", 1]
    np.testing.assert_allclose(vecs, want_vecs, atol=1e-6)
    assert meta[0] == {"n": 0, "tag": "four"} and meta[1] is None
    info = read_vectors_info(out)
    assert list(info["files"]) == [f"part-0000{i}.parquet" for i in range(4)]
    assert info["model_sha256"] == tiny_bundle_sha(tiny_bundle.path)
    assert (info["count"], info["dim"], info["bundle"], info["variant"]) == (370, 8, "tiny", "fp32")
    assert info["input"]["files"] == ["a.jsonl", "c.parquet", "sub/b.jsonl"]


def tiny_bundle_sha(bundle: Path) -> str:
    from umr.bundle import read_manifest

    return read_manifest(bundle).files["model.onnx"]


def test_cli_runs_and_refuses_to_overwrite(tiny_bundle, corpus_jsonl: Path, tmp_path, capsys):  # type: ignore[no-untyped-def]
    out = tmp_path / "v"
    argv = ["embed-corpus", "--bundle", str(tiny_bundle.path), "--input", str(corpus_jsonl)]
    argv += ["--out", str(out), "--no-progress", "--num-cpus", "1"]
    assert main(argv) == 0
    assert "embedded 300 rows (dim 8)" in capsys.readouterr().err
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert read_vectors_info(out)["count"] == 300


def test_cli_help_lists_every_option(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["embed-corpus", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--bundle", "--variant", "--batch-size", "--engine", "--ray-address", "--num-cpus",
        "--actors", "--force", "--no-progress", "--text-field", "--id-field", "--image-field",
    ):  # fmt: skip
        assert option in text


def test_failed_batch_is_retried_once(tiny_bundle, corpus_jsonl, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(FAULT_ENV, "doc-3")  # the first batch fails once, then succeeds
    result = embed_corpus(
        corpus_jsonl, tmp_path / "v", bundle=tiny_bundle.path, rows_per_batch=100, progress=False
    )
    assert (result.count, result.retried_rows) == (300, 100)
    ids, vecs, _ = read_all(tmp_path / "v")
    want_ids, want_vecs = expected(tiny_bundle.path, corpus_jsonl)
    assert ids == want_ids
    np.testing.assert_allclose(vecs, want_vecs, atol=1e-6)


def test_permanently_failing_batch_is_an_error_without_manifest(
    tiny_bundle, corpus_jsonl, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(FAULT_ENV, "151:always")
    out = tmp_path / "v"
    with pytest.raises(EmbedBatchError, match=r"ids 100\.\.199\) failed 3 times.*injected"):
        embed_corpus(corpus_jsonl, out, bundle=tiny_bundle.path, rows_per_batch=100, retries=2,
                     progress=False)  # fmt: skip
    assert not (out / MANIFEST_NAME).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(VectorsError, match="incomplete"):
        read_vectors(out)


def test_lost_rows_fail_the_count_check(tiny_bundle, corpus_jsonl, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = local.embed_tables

    def drop_one(*args, **kwargs):  # type: ignore[no-untyped-def]
        for i, table in enumerate(real(*args, **kwargs)):
            yield table.slice(1) if i == 1 else table

    monkeypatch.setattr(local, "embed_tables", drop_one)
    out = tmp_path / "v"
    with pytest.raises(CountMismatchError, match="read 300 rows but embedded 299"):
        embed_corpus(corpus_jsonl, out, bundle=tiny_bundle.path, progress=False)
    assert not (out / MANIFEST_NAME).exists()


def test_bad_input_fails_before_out_is_touched(tiny_bundle, tmp_path, make_jsonl) -> None:  # type: ignore[no-untyped-def]
    bad = make_jsonl(tmp_path / "in.jsonl", [{"text": "ok"}, {"text": None}])
    with pytest.raises(InputValueError, match=r"in\.jsonl:2: 'text' must be a string"):
        embed_corpus(bad, tmp_path / "v", bundle=tiny_bundle.path, progress=False)
    assert not (tmp_path / "v").exists()


def test_bad_options(tiny_bundle, corpus_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownVariantError, match="fp16"):
        embed_corpus(corpus_dir, tmp_path / "v", bundle=tiny_bundle.path, variant="fp16")
    with pytest.raises(InputValueError, match="inside the input directory"):
        embed_corpus(corpus_dir, corpus_dir / "out", bundle=tiny_bundle.path, fields=PQ)
    with pytest.raises(InputValueError, match="engine 'spark'"):
        embed_corpus(corpus_dir, tmp_path / "v", bundle=tiny_bundle.path, engine="spark")
    with pytest.raises(InputValueError, match="actors must be >= 1"):
        embed_corpus(corpus_dir, tmp_path / "v", bundle=tiny_bundle.path, actors=0)


def test_fault_hook_syntax() -> None:
    from umr.runtime.corpus_embed.faults import ALWAYS, Fault, faults_from_env

    env = {FAULT_ENV: "a, b:2,c:always,d:exit:/tmp/m"}
    assert faults_from_env(env) == (
        Fault("a", 1),
        Fault("b", 2),
        Fault("c", ALWAYS),
        Fault("d", 1, "/tmp/m"),
    )
    assert faults_from_env({}) == ()
