"""Export the transformer with Optimum and append umr's pooling subgraph: the fp32 graph."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from umr.export.source import SourceModel

from umr.errors import ExportError

OUTPUT_NAME = "sentence_embedding"
HIDDEN_NAME = "last_hidden_state"
_EXTERNAL_DATA_LIMIT = 1_800_000_000  # protobuf cannot hold a model over 2 GiB in one file


def export_transformer(src: SourceModel, work_dir: Path) -> Path:
    """Optimum's feature-extraction export of ``src`` into ``work_dir``; the ONNX path.

    The graph's output is ``last_hidden_state`` [batch, seq, dim] with dynamic axes.
    """
    from optimum.exporters.onnx import main_export

    out = work_dir / "optimum"
    # Optimum and the tracer are chatty (TracerWarnings, deprecations): keep stderr for our steps.
    with warnings.catch_warnings(), _quiet_logs(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            main_export(
                str(src.path),
                output=out,
                task="feature-extraction",
                library_name="transformers",
                do_validation=False,  # we validate the pooled output ourselves, end to end
                device="cpu",
                local_files_only=True,
            )
        except Exception as exc:  # Optimum raises plain ValueError/KeyError/RuntimeError
            raise ExportError(f"optimum could not export {src.path}: {exc}") from exc
    path = out / "model.onnx"
    if not path.is_file():
        raise ExportError(f"optimum finished but wrote no {path}")
    return path


def build_fp32_graph(
    transformer_onnx: Path, out_path: Path, pooling: str, *, as_function: bool = True
) -> tuple[str, ...]:
    """Append pooling + L2 to the exported transformer, save to ``out_path``; the input names."""
    import onnx
    from umr.kernels.onnx_pooling import PoolingSpec, append_pooling

    model = onnx.load(str(transformer_onnx))
    outputs = [o.name for o in model.graph.output]
    if HIDDEN_NAME not in outputs:
        raise ExportError(f"{transformer_onnx}: no {HIDDEN_NAME!r} output (has {outputs})")
    spec = PoolingSpec(mode=pooling, normalize=True, hidden=HIDDEN_NAME, output=OUTPUT_NAME)
    pooled = append_pooling(model, spec, as_function=as_function)
    onnx.checker.check_model(pooled)
    save_model(pooled, out_path)
    return tuple(i.name for i in pooled.graph.input)


def save_model(model: object, path: Path) -> None:
    """Save an ONNX model; weights go to ``<name>.data`` beside it only past protobuf's limit."""
    import onnx

    assert isinstance(model, onnx.ModelProto)
    if model.ByteSize() < _EXTERNAL_DATA_LIMIT:
        onnx.save(model, str(path))
    else:
        onnx.save(model, str(path), save_as_external_data=True, location=f"{path.name}.data")


@contextlib.contextmanager
def _quiet_logs():  # type: ignore[no-untyped-def]
    names = ("optimum", "transformers", "torch")
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in old.items():
            logging.getLogger(n).setLevel(level)
