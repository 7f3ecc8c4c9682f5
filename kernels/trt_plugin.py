"""The pooling op as a TensorRT plugin (``umr::pool``) through ``tensorrt.plugin`` (QDP).

TensorRT 10.7+ "quickly deployable plugins" describe a plugin with decorated Python
functions: ``@trtp.register`` gives output shapes/dtypes from symbolic input shapes,
``@trtp.autotune`` lists the I/O dtypes the plugin accepts, and ``@trtp.impl`` runs it at
enqueue time. Here ``impl`` wraps TensorRT's buffers as torch tensors (zero copy) and runs
:func:`umr.kernels.triton_pool.triton_pool` on TensorRT's CUDA stream, writing straight
into the engine's output buffer.

Nothing is imported from TensorRT at module import: call :func:`register` (once per
process, before building or deserialising an engine that uses the plugin). It raises
:class:`~umr.errors.ProviderUnavailableError` when ``tensorrt.plugin`` is missing.

Using it::

    from umr.kernels import trt_plugin
    trt_plugin.register()
    # network API:
    layer = network.add_plugin(
        trtp.op.umr.pool(hidden, attn, pool_mask, mode="mean", normalize=1, truncate_dim=0)
    )
    # or an ONNX graph for TensorRT's parser: a node from plugin_node(...)

I/O: ``hidden`` [batch, seq, dim] FP32/FP16/BF16, ``attention_mask`` and ``pool_mask``
[batch, seq] INT32 or INT64 (both the same), output FP32 [batch, dim or truncate_dim].
Attributes: ``mode`` ("mean"/"cls"/"last"), ``normalize`` (0/1: an int, because ONNX has no
bool attribute and TensorRT's ONNX parser hands plugins what the node holds) and
``truncate_dim`` (0 = keep every component).

The ``impl`` path calls back into Python on each enqueue: fine for serving from Python, not
for a C++-only runtime (that needs ``@trtp.aot_impl`` with a precompiled kernel).
"""

# No ``from __future__ import annotations`` here: tensorrt.plugin inspects the decorated
# functions' annotations as live classes (issubclass(annotation, TensorDesc)); postponed
# string annotations would make registration fail.

from typing import Any

from umr.kernels.reference import check_truncate_dim

from umr.errors import InputTypeError, InputValueError, ProviderUnavailableError

PLUGIN_NAMESPACE = "umr"
PLUGIN_NAME = "pool"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MODES = ("mean", "cls", "last")

# hidden (any float type, independently), both masks (the same int type), fp32 output.
IO_TYPES = "FP32*FP16*BF16, INT32|INT64, INT32|INT64, FP32"

_registered = False


def check_attrs(mode: str, normalize: int, truncate_dim: int) -> None:
    """Validate the plugin attributes; typed errors name the bad one."""
    if mode not in MODES:
        raise InputValueError(f"mode: {mode!r} is not one of {MODES}")
    if isinstance(normalize, bool) or normalize not in (0, 1):
        raise InputValueError(f"normalize: {normalize!r}; expected the int 0 or 1")
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int):
        raise InputTypeError(f"truncate_dim: expected an int (0 = keep all), got {truncate_dim!r}")
    if truncate_dim < 0:
        raise InputValueError(f"truncate_dim: {truncate_dim} < 0 (0 keeps every component)")


def output_width(hidden_dim: int | None, truncate_dim: int) -> int | None:
    """The output's last dim: ``hidden_dim`` (``None`` when symbolic) or ``truncate_dim``.

    A ``truncate_dim`` wider than a known ``hidden_dim`` is an :class:`InputValueError`.
    """
    if truncate_dim == 0:
        return hidden_dim
    if hidden_dim is not None:
        check_truncate_dim(truncate_dim, hidden_dim)
    return truncate_dim


def kept_dim(hidden_dim: int, truncate_dim: int) -> int | None:
    """``triton_pool``'s ``truncate_dim`` for the plugin attribute (0 means ``None``)."""
    return None if truncate_dim == 0 else check_truncate_dim(truncate_dim, hidden_dim)


def plugin_node(
    inputs: tuple[str, str, str],
    output: str,
    mode: str = "mean",
    normalize: int = 1,
    truncate_dim: int = 0,
    name: str = "umr_pool/trt_plugin",
) -> Any:
    """An ONNX node TensorRT's ONNX parser maps to this plugin (needs ``onnx``).

    The parser matches ``op_type`` to the plugin name and the ``plugin_namespace`` string
    attribute to its namespace; the other attributes become plugin attributes. Use it in
    a graph meant for TensorRT only (ONNX Runtime does not know the op).
    """
    from onnx import helper

    check_attrs(mode, normalize, truncate_dim)
    return helper.make_node(
        PLUGIN_NAME,
        list(inputs),
        [output],
        name=name,
        plugin_namespace=PLUGIN_NAMESPACE,
        mode=mode,
        normalize=normalize,
        truncate_dim=truncate_dim,
    )


def register() -> None:
    """Register ``umr::pool`` with TensorRT's plugin registry (idempotent).

    Raises :class:`ProviderUnavailableError` when ``tensorrt.plugin`` (TensorRT >= 10.7)
    cannot be imported; the plugin also needs torch, triton and a CUDA GPU at run time.
    """
    global _registered
    if _registered:
        return
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"the {PLUGIN_ID} TensorRT plugin needs TensorRT >= 10.7 with tensorrt.plugin "
            f"and a CUDA GPU (pip install 'umr[gpu]'): {exc}"
        ) from exc
    _define(trt, trtp)
    _registered = True


def _define(trt: Any, trtp: Any) -> None:
    """Declare the plugin's description, autotune and impl functions to ``trtp``."""

    @trtp.register(PLUGIN_ID)
    def _describe(
        hidden: trtp.TensorDesc,
        attention_mask: trtp.TensorDesc,
        pool_mask: trtp.TensorDesc,
        mode: str,
        normalize: int,
        truncate_dim: int,
    ) -> trtp.TensorDesc:
        check_attrs(mode, normalize, truncate_dim)
        width = hidden.shape_expr[2] if truncate_dim == 0 else truncate_dim
        return trtp.from_shape_expr((hidden.shape_expr[0], width), dtype=trt.float32)

    @trtp.autotune(PLUGIN_ID)
    def _autotune(
        hidden: trtp.TensorDesc,
        attention_mask: trtp.TensorDesc,
        pool_mask: trtp.TensorDesc,
        outputs: tuple[trtp.TensorDesc],
    ) -> list[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination(IO_TYPES, "LINEAR")]

    @trtp.impl(PLUGIN_ID)
    def _enqueue(
        hidden: trtp.Tensor,
        attention_mask: trtp.Tensor,
        pool_mask: trtp.Tensor,
        mode: str,
        normalize: int,
        truncate_dim: int,
        outputs: tuple[trtp.Tensor],
        stream: int,
    ) -> None:
        import torch
        from umr.kernels.triton_pool import triton_pool

        # Launch on TensorRT's stream: triton uses torch's current stream.
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            h = _as_torch(trt, hidden)
            triton_pool(
                h,
                _as_torch(trt, attention_mask),
                _as_torch(trt, pool_mask),
                mode,
                bool(normalize),
                kept_dim(h.shape[2], truncate_dim),
                out=_as_torch(trt, outputs[0]),
            )


class _CudaArray:
    """A trtp.Tensor's ``__cuda_array_interface__`` under another typestr.

    The interface has no name for bfloat16 (trtp.Tensor refuses it), so BF16 buffers are
    exposed as int16 and viewed back as bfloat16 by torch, without a copy.
    """

    def __init__(self, t: Any, typestr: str, itemsize: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": tuple(t.shape),
            "typestr": typestr,
            "data": (t.data_ptr, False),
            "strides": tuple(s * itemsize for s in t.strides),
            "version": 3,
        }


def _as_torch(trt: Any, t: Any) -> Any:
    import torch

    if t.dtype == trt.DataType.BF16:
        raw = torch.as_tensor(_CudaArray(t, "<i2", 2), device="cuda")
        return raw.view(torch.bfloat16)
    return torch.as_tensor(t, device="cuda")
