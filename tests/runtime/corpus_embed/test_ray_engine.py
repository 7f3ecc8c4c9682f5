"""The Ray engine on a local 2-CPU Ray: same output as the local engine, retries, failures.

One Ray per module (starting it takes seconds); its object store is kept small.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from umr.runtime.corpus_embed.faults import FAULT_ENV
from umr.runtime.corpus_embed.pipeline import EmbedBatchError
from umr.runtime.corpus_embed.reader import Fields
from umr.runtime.corpus_embed.run import embed_corpus
from umr.runtime.corpus_embed.vectors import MANIFEST_NAME, read_vectors, read_vectors_info

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow
PQ = Fields(text="body", id="doc_id")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=96 * 1024 * 1024,
    )
    yield
    ray.shutdown()


def run(engine: str, corpus: Path, out: Path, bundle: Path, **kwargs):  # type: ignore[no-untyped-def]
    return embed_corpus(
        corpus, out, bundle=bundle, engine=engine, fields=PQ, rows_per_batch=64,
        rows_per_file=200, progress=False, **kwargs,
    )  # fmt: skip


def read_all(out: Path):  # type: ignore[no-untyped-def]
    batches = list(read_vectors(out))
    ids = [i for b in batches for i in b.ids]
    meta = [m for b in batches for m in b.metadata]
    return ids, np.concatenate([b.vectors for b in batches]), meta


def test_ray_output_equals_local_output(tiny_bundle, corpus_dir: Path, tmp_path: Path) -> None:
    local = run("local", corpus_dir, tmp_path / "local", tiny_bundle.path)
    remote = run("ray", corpus_dir, tmp_path / "ray", tiny_bundle.path, actors=2)
    assert local.count == remote.count == 370  # count in = count out, checked by the run too
    l_ids, l_vecs, l_meta = read_all(tmp_path / "local")
    r_ids, r_vecs, r_meta = read_all(tmp_path / "ray")
    assert r_ids == l_ids and r_meta == l_meta  # same order: Ray preserves it
    np.testing.assert_allclose(r_vecs, l_vecs, atol=1e-5)
    l_info, r_info = read_vectors_info(tmp_path / "local"), read_vectors_info(tmp_path / "ray")
    assert list(r_info["files"]) == list(l_info["files"])  # same part layout
    assert (r_info["engine"], r_info["count"], r_info["input"]) == (
        "ray",
        370,
        l_info["input"],
    )


def test_ray_retries_a_failed_batch(tiny_bundle, corpus_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(FAULT_ENV, "doc-3")  # read on the driver, shipped to the actors
    # 3 actors on 2 CPUs: each gets a fraction of a CPU, or one would never be placed.
    result = run("ray", corpus_dir, tmp_path / "ray", tiny_bundle.path, actors=3)
    assert result.count == 370 and result.retried_rows == 64
    ids, _, _ = read_all(tmp_path / "ray")
    assert len(set(ids)) == 370


def test_ray_permanent_failure_is_reported_without_manifest(
    tiny_bundle, corpus_dir, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(FAULT_ENV, "pq-70:always")
    out = tmp_path / "ray"
    with pytest.raises(EmbedBatchError, match=r"'pq-64'\.\.'pq-119'\) failed 3 times.*pq-70"):
        run("ray", corpus_dir, out, tiny_bundle.path)
    assert not (out / MANIFEST_NAME).exists()


def test_ray_restarts_a_crashed_actor(tiny_bundle, corpus_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "crashed"
    monkeypatch.setenv(FAULT_ENV, f"doc-3:exit:{marker}")  # the actor dies once (os._exit)
    result = run("ray", corpus_dir, tmp_path / "ray", tiny_bundle.path)
    assert marker.exists() and result.count == 370
    ids, _, _ = read_all(tmp_path / "ray")
    assert len(set(ids)) == 370
    assert ray.data.DataContext.get_current().execution_options.preserve_order is False


def test_ray_embeds_images_like_the_local_engine(mm_bundle, tmp_path, make_jsonl) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    root = tmp_path / "in"
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(40):
        Image.new("RGBA", (6 + i % 5, 9), (i * 6, 90, 200 - i * 4, 255)).save(root / f"img/{i}.png")
        row = {"id": i, "image": f"img/{i}.png"}
        rows.append({**row, "text": "a text"} if i % 2 else row)
    rows.append({"id": "t", "text": "only text"})
    corpus = make_jsonl(root / "d.jsonl", rows)

    def go(engine: str):  # type: ignore[no-untyped-def]
        return embed_corpus(
            corpus, tmp_path / engine, bundle=mm_bundle.path, engine=engine, rows_per_batch=16,
            progress=False, **({"actors": 2} if engine == "ray" else {}),
        )  # fmt: skip

    assert go("local").count == go("ray").count == 41
    l_ids, l_vecs, _ = read_all(tmp_path / "local")
    r_ids, r_vecs, _ = read_all(tmp_path / "ray")
    assert r_ids == l_ids
    np.testing.assert_allclose(r_vecs, l_vecs, atol=1e-5)
    assert read_vectors_info(tmp_path / "ray")["input"]["image_rows"] == 40
