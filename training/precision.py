"""The precision a training run computes in.

bf16 autocast halves the cost of matmuls only where the CPU runs bf16 natively
(AVX-512 or AMX, oneDNN's own check). Elsewhere torch emulates it: on a 2-core AVX2
EPYC one forward pass of the default model over 256 text+image pairs took 22 s in
bf16 against 2.1 s in fp32. ``"auto"`` therefore picks bf16 only where it is fast.
"""

from __future__ import annotations

#: What a recipe's ``precision`` may say.
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls in hardware (AVX-512 or AMX)."""
    import torch  # here, so that reading a recipe needs no torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def resolve_precision(asked: str) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` becomes bf16 only where it is native."""
    if asked == "auto":
        return "bf16" if native_bf16() else "fp32"
    return asked


def emulation_warning(used: str) -> str | None:
    """Why ``used`` will be slow on this machine, or ``None`` when it will not."""
    if used != "bf16" or native_bf16():
        return None
    return (
        "training in bf16 on a CPU without native bf16 (no AVX-512 or AMX): torch emulates "
        'it, about 10x slower than fp32; set "precision": "auto" or "fp32" in the recipe'
    )
