"""umr.runtime: serving embeddings and search with ONNX Runtime, tokenizers and numpy only.

Nothing under this package imports torch, transformers, optimum or onnx.
"""

from umr.runtime.embedder import Embedder

__all__ = ["Embedder"]

try:  # the index package is written in parallel; TODO(lead): make this a plain import
    from umr.runtime.index import ExactIndex, Hit, Index
except ImportError:  # pragma: no cover - only while runtime/index is unfinished
    pass
else:
    __all__ += ["ExactIndex", "Hit", "Index"]
