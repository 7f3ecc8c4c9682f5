"""`umr index build` on every backend, --from-vectors, and `umr search --filter`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from umr.runtime.cli.main import main
from umr.runtime.cli.search_cmd import parse_filters

from umr.errors import InputValueError

TEXTS = ["the python list", "a text query", "this is it", "with the text of python", "on a list"]
LANGS = ["en", "fr", "en", "fr", "en"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _search(capsys, bundle, location, query, *extra) -> list[dict]:
    argv = ["search", "--bundle", bundle, "--index", location, query, "-k", "5", "--json"]
    code, out, err = _run(capsys, *argv, *extra)
    assert code == 0, err
    return json.loads(out)["hits"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    rows = [
        {"id": f"d{i}", "text": t, "metadata": {"lang": LANGS[i], "n": i}}
        for i, t in enumerate(TEXTS)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def vectors_dir(tmp_path, tiny_bundle) -> Path:
    """A vectors directory written with embed-corpus's own writer and the tiny bundle."""
    from umr.runtime import Embedder
    from umr.runtime.corpus_embed.vectors import to_table
    from umr.runtime.corpus_embed.writer import VectorWriter, write_manifest

    embedder = Embedder.load(tiny_bundle.path)
    root = tmp_path / "vectors"
    root.mkdir()
    writer = VectorWriter(root, embedder.dim, rows_per_file=2)
    meta = [{"lang": lang, "n": i} for i, lang in enumerate(LANGS)]
    writer.write(to_table([f"d{i}" for i in range(5)], embedder.embed_text(TEXTS), meta))
    write_manifest(
        root,
        dim=embedder.dim,
        count=5,
        bundle=embedder.manifest.name,
        model_sha256="0" * 64,
        variant="fp32",
        files=writer.close(),
        input={"path": "docs.jsonl"},
    )
    return root


def _backend_args(backend: str, tmp_path: Path) -> list[str]:
    if backend == "milvus":
        pytest.importorskip("milvus_lite", reason="pip install 'umr[milvus]'")
        return ["--backend", "milvus", "--uri", str(tmp_path / "m.db"), "--collection", "docs"]
    return ["--backend", backend]


@pytest.mark.parametrize("backend", ["hnswlib", "exact", "milvus"])
def test_build_and_filtered_search_on_each_backend(capsys, tmp_path, tiny_bundle, corpus, backend):
    bundle, out = str(tiny_bundle.path), tmp_path / "idx"
    argv = ["index", "build", "--bundle", bundle, "--input", corpus, "--out", out]
    code, _, err = _run(capsys, *argv, *_backend_args(backend, tmp_path), "--no-progress")
    assert code == 0, err
    assert "indexed 5 items" in err
    assert json.loads((out / "umr-build.json").read_text())["backend"] == backend
    hits = _search(capsys, bundle, out, TEXTS[3])
    assert hits[0]["id"] == "d3" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["metadata"] == {"text": TEXTS[3], "metadata": {"lang": "fr", "n": 3}}
    fr = _search(capsys, bundle, out, TEXTS[0], "--filter", "metadata.lang=fr")
    assert sorted(h["id"] for h in fr) == ["d1", "d3"]
    both = ["--filter", "metadata.lang=en", "--filter", "metadata.n=2"]
    assert [h["id"] for h in _search(capsys, bundle, out, TEXTS[0], *both)] == ["d2"]
    if backend == "milvus":  # the database path and collection reach it without the pointer
        direct = ["--collection", "docs", "--filter", "metadata.n=4"]
        assert [h["id"] for h in _search(capsys, bundle, tmp_path / "m.db", "x", *direct)] == ["d4"]


@pytest.mark.parametrize("backend", ["hnswlib", "milvus"])
def test_build_from_vectors(capsys, tmp_path, tiny_bundle, vectors_dir, backend):
    out = tmp_path / "idx"
    argv = ["index", "build", "--from-vectors", vectors_dir, "--out", out, "--no-progress"]
    code, _, err = _run(capsys, *argv, *_backend_args(backend, tmp_path))
    assert code == 0, err
    info = json.loads((out / "umr-build.json").read_text())
    made_by = json.loads((vectors_dir / "_umr_vectors.json").read_text())
    assert (info["bundle"], info["variant"]) == (made_by["bundle"], "fp32")
    assert (info["count"], info["dim"], info["vectors"]) == (5, 8, str(vectors_dir.resolve()))
    hits = _search(capsys, str(tiny_bundle.path), out, TEXTS[1])
    assert hits[0]["id"] == "d1" and hits[0]["metadata"] == {"metadata": {"lang": "fr", "n": 1}}
    en = _search(capsys, str(tiny_bundle.path), out, "q", "--filter", "metadata.lang=en")
    assert sorted(h["id"] for h in en) == ["d0", "d2", "d4"]


def test_from_vectors_with_a_checked_bundle_and_a_monkeypatched_reader(
    capsys, tmp_path, tiny_bundle, monkeypatch
):
    import numpy as np
    from umr.runtime.corpus_embed import vectors
    from umr.runtime.corpus_embed.vectors import VectorBatch

    x = np.eye(16, dtype=np.float32)[:3]
    batch = VectorBatch(ids=[1, 2, 3], vectors=x, metadata=[None, {"a": 1}, None])
    monkeypatch.setattr(vectors, "read_vectors_info", lambda d: {"dim": 16, "count": 3})
    monkeypatch.setattr(vectors, "read_vectors", lambda d: iter([batch]))
    argv = ["index", "build", "--from-vectors", tmp_path, "--out", tmp_path / "idx"]
    code, _, err = _run(capsys, *argv, "--bundle", tiny_bundle.path)  # tiny: dim 8, not 16
    assert code == 1 and "16-dim" in err and not (tmp_path / "idx").exists()
    code, _, err = _run(capsys, *argv, "--exact", "--no-progress")
    assert code == 0, err
    from umr.runtime.index import open_index

    index = open_index(tmp_path / "idx")
    assert index.ids() == [1, 2, 3] and index.get(2) == {"metadata": {"a": 1}}


def test_tampered_vectors_write_nothing(capsys, tmp_path, vectors_dir):
    part = sorted(vectors_dir.glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-10])
    out = tmp_path / "idx"
    code, _, err = _run(capsys, "index", "build", "--from-vectors", vectors_dir, "--out", out)
    assert code == 1 and "sha256" in err and not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--exact", "--backend", "milvus", "--uri", "x.db"], "--exact contradicts"),
        (["--backend", "milvus"], "needs --uri"),
        (["--uri", "x.db"], "--uri is for --backend milvus"),
    ],
)
def test_backend_flags_are_checked(capsys, tmp_path, corpus, tiny_bundle, extra, message):
    argv = ["index", "build", "--bundle", tiny_bundle.path, "--input", corpus]
    code, _, err = _run(capsys, *argv, "--out", tmp_path / "idx", *extra)
    assert code == 1 and message in err


def test_input_needs_a_bundle_and_sources_are_exclusive(capsys, tmp_path, corpus):
    code, _, err = _run(capsys, "index", "build", "--input", corpus, "--out", tmp_path / "i")
    assert code == 1 and "--input needs --bundle" in err
    with pytest.raises(SystemExit):
        main(["index", "build", "--input", "a", "--from-vectors", "b", "--out", "c"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_milvus_collection_needs_force_to_replace(capsys, tmp_path, tiny_bundle, corpus):
    pytest.importorskip("milvus_lite")
    b = str(tiny_bundle.path)
    base = ["index", "build", "--bundle", b, "--input", corpus, "--no-progress"]
    milvus = ["--backend", "milvus", "--uri", tmp_path / "m.db"]
    assert _run(capsys, *base, "--out", tmp_path / "a", *milvus)[0] == 0
    code, _, err = _run(capsys, *base, "--out", tmp_path / "b", *milvus)
    assert code == 1 and "already exists" in err and "--force" in err
    assert _run(capsys, *base, "--out", tmp_path / "b", *milvus, "--force")[0] == 0


def test_search_filter_errors_are_one_line(capsys, tmp_path, tiny_bundle, corpus):
    b, out = str(tiny_bundle.path), tmp_path / "idx"
    assert _run(capsys, "index", "build", "--bundle", b, "--input", corpus, "--out", out)[0] == 0
    base = ["search", "--bundle", b, "--index", out, "q"]
    code, _, err = _run(capsys, *base, "--filter", "a-b=1")
    assert code == 1 and "filter key 'a-b'" in err and err.count("\n") == 1
    code, _, err = _run(capsys, *base, "--filter", "novalue")
    assert code == 1 and "expected KEY=VALUE" in err
    code, _, err = _run(capsys, *base, "--collection", "x")
    assert code == 1 and "--collection goes with a Milvus" in err


def test_parse_filters_types_values():
    got = parse_filters(["lang=en", "year=2020", "f=0.5", "ok=true", 'id="42"', "x=null", "e="])
    assert got == {
        "lang": "en",
        "year": 2020,
        "f": 0.5,
        "ok": True,
        "id": "42",
        "x": "null",
        "e": "",
    }
    assert parse_filters([]) is None
    with pytest.raises(InputValueError):
        parse_filters(["=1"])
