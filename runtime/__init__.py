"""umr.runtime: serving embeddings and search with ONNX Runtime, tokenizers, hnswlib and numpy.

Nothing under this package imports torch, transformers, optimum or onnx.
"""

from umr.runtime.embedder import Embedder
from umr.runtime.index import ExactIndex, Hit, Index

__all__ = ["Embedder", "ExactIndex", "Hit", "Index"]
