"""Which operator domains an ONNX file uses, read without the ``onnx`` package.

TensorRT parses plain ONNX only: a graph with ONNX Runtime's fused ``com.microsoft``
ops (what ORT's offline optimizer and some quantizers write) fails to build, deep
inside TensorRT. The serving runtime does not import ``onnx``, so this module reads
the two places a domain must be declared (ONNX requires every node's domain in the
model's ``opset_import``; a model-local function declares its own) straight from
the protobuf wire format. The graph itself (the bulk of the file) is skipped by seeking.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from umr.errors import BundleError, ProviderUnavailableError

#: Domains TensorRT's ONNX parser cannot take.
ORT_ONLY_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental"})
# Field numbers from onnx.proto: ModelProto.opset_import / .functions,
# FunctionProto.opset_import, OperatorSetIdProto.domain.
_MODEL_OPSET_IMPORT, _MODEL_FUNCTIONS, _FUNCTION_OPSET_IMPORT, _OPSET_DOMAIN = 8, 25, 9, 1
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def opset_domains(path: str | os.PathLike[str]) -> frozenset[str]:
    """Every operator domain ``path`` declares (``""`` is the default ONNX domain)."""
    domains: set[str] = set()
    with open(path, "rb") as fh:
        for field, payload in _fields(fh, {_MODEL_OPSET_IMPORT, _MODEL_FUNCTIONS}, path):
            if field == _MODEL_OPSET_IMPORT:
                domains.add(_opset_domain(payload, path))
            else:
                domains.update(_function_domains(payload, path))
    return frozenset("" if d == "ai.onnx" else d for d in domains)


def require_plain_onnx(path: str | os.PathLike[str], what: str) -> None:
    """Raise ``ProviderUnavailableError`` if ``path`` uses ONNX Runtime-only ops.

    ``what`` names the graph in the message (e.g. ``"variant 'int8'"``).
    """
    bad = sorted(opset_domains(path) & ORT_ONLY_DOMAINS)
    if bad:
        raise ProviderUnavailableError(
            f"{what} ({path}) uses ONNX Runtime-only ops (domain {', '.join(bad)}), which "
            "TensorRT cannot parse; give TensorRT a plain export (variant 'fp32' or 'fp16'), "
            "or use provider='cuda'"
        )


def _opset_domain(buf: bytes, path: object) -> str:
    for field, payload in _fields(_Bytes(buf), {_OPSET_DOMAIN}, path):
        if field == _OPSET_DOMAIN:
            return payload.decode("utf-8")
    return ""


def _function_domains(buf: bytes, path: object) -> Iterator[str]:
    for _, payload in _fields(_Bytes(buf), {_FUNCTION_OPSET_IMPORT}, path):
        yield _opset_domain(payload, path)


class _Bytes:
    """The ``read``/``seek`` subset of a binary file over an in-memory buffer."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos


def _fields(fh: BinaryIO | _Bytes, wanted: set[int], path: object) -> Iterator[tuple[int, bytes]]:
    """(field number, payload) of each length-delimited field in ``wanted``; others skipped."""
    while True:
        tag = _varint(fh, path, eof_ok=True)
        if tag is None:
            return
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _varint(fh, path)
        elif wire in (_I64, _I32):
            fh.seek(8 if wire == _I64 else 4, 1)
        elif wire == _LEN:
            size = _varint(fh, path)
            assert size is not None
            if field in wanted:
                payload = fh.read(size)
                if len(payload) != size:
                    raise BundleError(f"{path}: truncated ONNX file")
                yield field, payload
            else:
                fh.seek(size, 1)
        else:
            raise BundleError(f"{path}: not an ONNX file (protobuf wire type {wire})")


def _varint(fh: BinaryIO | _Bytes, path: object, eof_ok: bool = False) -> int | None:
    value, shift = 0, 0
    while True:
        byte = fh.read(1)
        if not byte:
            if eof_ok and shift == 0:
                return None
            raise BundleError(f"{path}: truncated ONNX file")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise BundleError(f"{path}: not an ONNX file (bad varint)")
