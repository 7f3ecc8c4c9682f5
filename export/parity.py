"""Embed texts with an exported graph and with sentence-transformers, and compare them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from umr.bundle import Parity
from umr.errors import ParityError


@dataclass(frozen=True)
class Comparison:
    """Per-text cosines between two embedding sets of the same texts."""

    cosines: np.ndarray

    @property
    def worst(self) -> int:
        """Index of the text with the lowest cosine."""
        return int(np.argmin(self.cosines))

    def parity(self, reference: str, gate: float | None) -> Parity:
        """The manifest record of this comparison."""
        low = float(self.cosines.min())
        return Parity(
            reference=reference,
            n_texts=len(self.cosines),
            min_cosine=round(low, 6),
            mean_cosine=round(float(self.cosines.mean()), 6),
            gate=gate,
            passed=gate is None or low >= gate,
        )


def compare(a: np.ndarray, b: np.ndarray) -> Comparison:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return Comparison(np.sum(a * b, axis=1) / np.maximum(na, 1e-12))


def require(comp: Comparison, gate: float, texts: Sequence[str], what: str) -> None:
    """Raise ParityError naming the worst text and its cosine if ``comp`` is under ``gate``."""
    i = comp.worst
    if comp.cosines[i] < gate:
        text = texts[i] if len(texts[i]) <= 80 else texts[i][:77] + "..."
        raise ParityError(
            f"{what}: min cosine {comp.cosines[i]:.6f} < gate {gate} on text #{i} {text!r} "
            f"(mean {comp.cosines.mean():.6f} over {len(texts)} texts)"
        )


def onnx_session(model_path: Path, threads: int = 2) -> object:
    """An ONNX Runtime CPU session with all graph optimisations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def feed_batches(
    tokenizer_path: Path, texts: Sequence[str], names: Sequence[str], batch_size: int = 32
) -> Iterator[dict[str, np.ndarray]]:
    """Graph feeds for ``texts`` in batches, each padded to its longest text only."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_padding()
    for start in range(0, len(texts), batch_size):
        enc = tok.encode_batch(list(texts[start : start + batch_size]))
        feeds = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        feeds["pool_mask"] = feeds["attention_mask"]
        yield {n: feeds[n] for n in names}


def onnx_embed(
    session: object, tokenizer_path: Path, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """Embed ``texts`` with an exported graph (pool_mask = attention_mask)."""
    names = [i.name for i in session.get_inputs()]  # type: ignore[attr-defined]
    out = [
        session.run(None, feeds)[0]  # type: ignore[attr-defined]
        for feeds in feed_batches(tokenizer_path, texts, names, batch_size)
    ]
    return np.concatenate(out).astype(np.float32)


def reference_embed(source_dir: Path, texts: Sequence[str], max_seq_length: int) -> np.ndarray:
    """sentence-transformers' embeddings of ``texts`` (L2-normalised), on CPU."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source_dir), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    emb = model.encode(list(texts), batch_size=32, normalize_embeddings=True)
    return np.asarray(emb, dtype=np.float32)
