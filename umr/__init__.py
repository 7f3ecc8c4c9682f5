"""umr: universal multimodal retrieval runtime."""

__version__ = "0.1.0"
