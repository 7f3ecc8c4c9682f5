"""The fused text+image graph: UmrEncoder's early fusion exported with Optimum, pooled in-graph.

:class:`FusedEncoder` is the export view of a (LoRA-merged) :class:`UmrEncoder`: the same
ops as ``UmrEncoder.forward`` for rows that all have an image. Optimum exports it through
a custom :class:`optimum.exporters.onnx.OnnxConfig` (inputs, dynamic axes, opset, dummy
inputs). Its outputs are the fused token states and the fused masks; umr's pooling
function from :mod:`umr.kernels.onnx_pooling` (masked mean + L2, the same ONNX function
as the text graph) is then appended, so ``sentence_embedding`` is the graph's only output.
The graph is plain ONNX (no ``com.microsoft`` ops), so TensorRT can take it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx import TensorProto, helper
from optimum.exporters.onnx import OnnxConfig, export
from optimum.utils import DummyInputGenerator, NormalizedTextConfig
from umr.export.onnx_graph import _quiet_logs, save_model
from umr.kernels.onnx_pooling import (
    FUNCTION_DOMAIN,
    NODE_PREFIX,
    PoolingSpec,
    build_l2_nodes,
    default_opset,
    pooling_function,
)

from umr.errors import ExportError

INPUTS = ("input_ids", "attention_mask", "pool_mask", "pixel_values")
OUTPUT_NAME = "sentence_embedding"
_HIDDEN, _ATTN, _POOL = "last_hidden_state", "fused_attention_mask", "fused_pool_mask"
_SKIP = "image_skip"  # models with ModelConfig.image_residual: gate * unit mean image token
#: Optimum's default opset for BERT-style encoders (the text graph gets it too): 17+ keeps
#: LayerNormalization one op, which the fp16 conversion keeps in fp32 by op type.
OPSET = 18
_SEQ = {0: "batch_size", 1: "sequence_length"}
_FUSED = {0: "batch_size", 1: "fused_length"}


def require_early_fusion(cfg: Any) -> None:
    """ExportError unless the model config ``cfg`` uses early fusion (all this graph does)."""
    if cfg.fusion != "early":
        raise ExportError(
            f"model {cfg.name!r} uses {cfg.fusion!r} fusion; the multimodal bundle's fused "
            "graph implements early fusion only"
        )


class FusedEncoder(torch.nn.Module):
    """``(input_ids, attention_mask, pool_mask, pixel_values)`` -> fused states and masks.

    Exactly ``UmrEncoder.forward`` (early fusion) with ``has_image`` all true: the image
    tokens go right after position 0 and the attention and pool masks get ones for them.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        require_early_fusion(model.cfg)
        self.model = model
        # Optimum reads the config (vocab size for dummy inputs, return_dict, use_cache):
        # a copy, so the export does not edit the model's own.
        self.config = copy.deepcopy(model.backbone.config)
        self.config.umr_image_size = model.cfg.image.size
        self.config.umr_image_residual = hasattr(model, "image_gate")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pool_mask: torch.Tensor,
        pixel_values: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        m = self.model
        emb = m.backbone.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        img = m.image_tokens(pixel_values)
        ones = torch.ones_like(attention_mask[:, :1]).expand(-1, img.shape[1])
        emb = torch.cat([emb[:, :1], img, emb[:, 1:]], dim=1)
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        pool = torch.cat([pool_mask[:, :1], ones, pool_mask[:, 1:]], dim=1)
        # UmrEncoder's own encoder call (extended mask + backbone layers), not a copy of it.
        out = {_HIDDEN: m._encode(emb, mask), _ATTN: mask, _POOL: pool}
        if hasattr(m, "image_gate"):  # UmrEncoder.forward's skip path, added after pooling
            out[_SKIP] = m.image_gate * torch.nn.functional.normalize(img.mean(1), dim=-1)
        return out


class FusedDummyInputs(DummyInputGenerator):
    """Dummy inputs for tracing: token ids, all-ones masks, pixels in [-1, 1]."""

    SUPPORTED_INPUT_NAMES = INPUTS

    def __init__(
        self,
        task: str,
        normalized_config: Any,
        batch_size: int = 2,
        sequence_length: int = 16,
        **_: Any,
    ) -> None:
        self.batch, self.seq = batch_size, sequence_length
        self.vocab = normalized_config.vocab_size
        self.size = normalized_config.config.umr_image_size

    def generate(
        self,
        input_name: str,
        framework: str = "pt",
        int_dtype: str = "int64",
        float_dtype: str = "fp32",
    ) -> Any:
        if input_name == "pixel_values":
            shape = [self.batch, 3, self.size, self.size]
            return self.random_float_tensor(
                shape, min_value=-1, max_value=1, framework=framework, dtype=float_dtype
            )
        low, high = (0, self.vocab) if input_name == "input_ids" else (1, 2)
        return self.random_int_tensor(
            [self.batch, self.seq],
            max_value=high,
            min_value=low,
            framework=framework,
            dtype=int_dtype,
        )


class UmrFusedOnnxConfig(OnnxConfig):
    """Inputs, outputs and dynamic axes of the fused graph (pixels are fixed-size)."""

    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
    DUMMY_INPUT_GENERATOR_CLASSES = (FusedDummyInputs,)
    DEFAULT_ONNX_OPSET = OPSET
    ATOL_FOR_VALIDATION = 1e-4  # unused: umr checks the pooled output end to end

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        seq = {name: dict(_SEQ) for name in INPUTS[:3]}
        return {**seq, "pixel_values": {0: "batch_size"}}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        out = {name: dict(_FUSED) for name in (_HIDDEN, _ATTN, _POOL)}
        if getattr(self._config, "umr_image_residual", False):
            out[_SKIP] = {0: "batch_size"}
        return out


def export_fused(model: Any, work_dir: Path) -> Path:
    """Optimum export of ``model``'s fused view into ``work_dir``; the ONNX path (no pooling).

    ``optimum.exporters.onnx.onnx_export_from_model`` with ``custom_onnx_configs`` is not
    used: it first infers the model's library from its class's module and refuses a class
    that is not from transformers/diffusers/timm/sentence-transformers. ``export`` is the
    same machinery (the OnnxConfig's inputs, dynamic axes, opset, dummy inputs and model
    patching, then ``torch.onnx.export``) one level down, without that look-up.
    """
    encoder = FusedEncoder(model).eval()
    out = work_dir / "fused" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    with _export_mode(), torch.no_grad():
        try:
            config = UmrFusedOnnxConfig(encoder.config, task="feature-extraction")
            export(encoder, config, out, opset=OPSET, device="cpu")
        except Exception as exc:  # optimum/torch raise plain RuntimeError/ValueError
            raise ExportError(f"optimum could not export the fused graph: {exc}") from exc
    if not out.is_file():
        raise ExportError(f"optimum finished but wrote no {out}")
    return out


@contextlib.contextmanager
def _export_mode() -> Iterator[None]:
    """Quiet tracer warnings, and no ``nn.TransformerEncoderLayer`` fast path: in eval mode
    it runs the fused ``aten::_transformer_encoder_layer_fwd``, which has no ONNX export."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), _quiet_logs(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def attach_pooling(fused_onnx: Path, out_path: Path) -> tuple[str, ...]:
    """Append umr's mean-pool + L2 function over the fused states and masks; the inputs.

    The result's only output is ``sentence_embedding`` float32 ``[batch, dim]``.
    """
    model = onnx.load(str(fused_onnx))
    g = model.graph
    have = [o.name for o in g.output]
    if have not in ([_HIDDEN, _ATTN, _POOL], [_HIDDEN, _ATTN, _POOL, _SKIP]):
        raise ExportError(
            f"{fused_onnx}: outputs {have}, expected {[_HIDDEN, _ATTN, _POOL]}"
            f" (then {_SKIP!r} for a model with the image skip path)"
        )
    skip = _SKIP in have
    dim = g.output[0].type.tensor_type.shape.dim[2].dim_value or "hidden_size"
    spec = PoolingSpec(mode="mean", normalize=True, output=OUTPUT_NAME)
    model.functions.append(pooling_function(spec, default_opset(model)))
    model.opset_import.append(helper.make_opsetid(FUNCTION_DOMAIN, 1))
    name = spec.function_name
    pooled = "pooled_embedding" if skip else OUTPUT_NAME
    node = helper.make_node(
        name,
        [_HIDDEN, _ATTN, _POOL],
        [pooled],
        name=NODE_PREFIX + name,
        domain=FUNCTION_DOMAIN,
    )
    g.node.append(node)
    if skip:
        g.node.extend(_skip_nodes(pooled, _SKIP, OUTPUT_NAME, default_opset(model)))
    del g.output[:]
    g.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch_size", dim])
    )
    onnx.checker.check_model(model, full_check=True)
    save_model(model, out_path)
    return tuple(i.name for i in g.input)


def _skip_nodes(pooled: str, skip: str, out: str, opset: int) -> list[onnx.NodeProto]:
    """``out = L2(pooled + skip)``, as in UmrEncoder.forward."""
    add = helper.make_node("Add", [pooled, skip], ["skip_sum"], name="umr_skip_add")
    return [add, *build_l2_nodes("skip_sum", out, opset, prefix="umr_skip_")]


def graph_input_dims(path: Path) -> dict[str, tuple[str | int, ...]]:
    """Each input's dims in an ONNX graph (names for dynamic dims, ints for fixed)."""
    model = onnx.load(str(path), load_external_data=False)
    return {
        i.name: tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim)
        for i in model.graph.input
    }


def build_fused_graph(model: Any, work_dir: Path, out_path: Path) -> tuple[str, ...]:
    """Export ``model``'s fused graph with pooling to ``out_path``; its input names."""
    inputs = attach_pooling(export_fused(model, work_dir), out_path)
    if inputs != INPUTS:
        raise ExportError(f"fused graph inputs {list(inputs)}, expected {list(INPUTS)}")
    return inputs
