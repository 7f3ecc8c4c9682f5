"""Checks on the real exported default bundle (path in UMR_TEST_BUNDLE; built by `make bundle`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from umr.bundle import read_manifest, verify_files

pytestmark = pytest.mark.bundle


@pytest.fixture(scope="module")
def bundle_dir(real_bundle: Path) -> Path:
    return real_bundle


def test_manifest_records_the_model_and_its_parity(bundle_dir):
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    assert (manifest.dim, manifest.pooling, manifest.max_seq_length) == (384, "mean", 256)
    assert manifest.output == "sentence_embedding" and manifest.normalize
    fp32, int8 = manifest.variant("fp32"), manifest.variant("int8")
    assert fp32.parity_against("sentence-transformers").min_cosine >= 0.9999
    assert int8.parity_against("fp32").min_cosine >= 0.99
    assert int8.parity_against("sentence-transformers") is not None
    # The runtime decides how to batch from this flag: dynamic int8 is not batch-invariant.
    assert fp32.details["batch_invariant"] is True
    assert int8.details["batch_invariant"] is False


@pytest.mark.slow
def test_independent_recheck_against_sentence_transformers(bundle_dir):
    """Texts outside the export's parity set, embedded by the bundle and by torch."""
    pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed")
    from umr.export import default_model_dir
    from umr.export.parity import compare, onnx_embed, onnx_session, reference_embed
    from umr.export.sentences import PARITY_TEXTS

    from umr.corpus import python_reference_passages, stdlib_docstrings

    texts = [
        *stdlib_docstrings(limit=400)[::25],
        *(p.text for p in python_reference_passages()[1::97]),
    ]
    texts = [t for t in texts if t not in PARITY_TEXTS][:40]
    manifest = read_manifest(bundle_dir)
    tok = bundle_dir / manifest.tokenizer
    ref = reference_embed(default_model_dir(), texts, manifest.max_seq_length)
    fp32 = onnx_embed(onnx_session(bundle_dir / manifest.variant("fp32").file), tok, texts)
    int8 = onnx_embed(onnx_session(bundle_dir / manifest.variant("int8").file), tok, texts)
    assert fp32.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    assert compare(fp32, ref).cosines.min() >= 0.9999
    assert compare(int8, fp32).cosines.min() >= 0.99
