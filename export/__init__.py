"""umr.export: turn a local text-encoder directory, or a trained multimodal checkpoint,
into a verified umr bundle.

Importing this package is cheap: torch, transformers, optimum and onnx are imported
inside the functions that need them.
"""

from umr.export.bundle_export import export_bundle
from umr.export.multimodal_export import export_multimodal
from umr.export.source import SourceModel, default_model_dir, read_source

__all__ = ["SourceModel", "default_model_dir", "export_bundle", "export_multimodal", "read_source"]
