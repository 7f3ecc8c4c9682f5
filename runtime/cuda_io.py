"""Running one padded batch through an ONNX Runtime session: plainly, or with IO binding.

On the CPU, ``session.run`` is all there is. On a GPU, plain ``run`` takes host arrays,
copies each to the device inside ORT, and copies every output back. With IO binding
the inputs are placed on the device by us (one copy each; an input that is the same
array as another, such as ``pool_mask`` = ``attention_mask`` without an instruction, is
copied once and bound twice), and the output is bound on the device, where ORT writes
it into its arena; only the pooled ``[batch, dim]`` vectors come back to the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

BatchRunner = Callable[[Mapping[str, np.ndarray]], np.ndarray]
"""Feeds of one padded batch -> the ``[rows, dim]`` float32 output."""


class OrtRunner:
    """``session.run`` for the bundle's one output, inputs from host memory."""

    def __init__(self, session: Any, output: str) -> None:
        self.session, self.output = session, output
        self._names = [output]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.session.run(self._names, dict(feeds))[0]


class IoBindingRunner:
    """Inputs and output bound on ``device`` (``"cuda"``; ``"cpu"`` runs the same path).

    A binding object is made per call, so calls from several threads do not share one.
    """

    def __init__(self, session: Any, output: str, device: str = "cuda", device_id: int = 0):
        import onnxruntime as ort

        self.session, self.output = session, output
        self.device, self.device_id = device, device_id
        self._from_numpy = ort.OrtValue.ortvalue_from_numpy

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        binding = self.session.io_binding()
        placed: dict[int, Any] = {}  # id(host array) -> its device copy
        for name, array in feeds.items():
            value = placed.get(id(array))
            if value is None:
                host = np.ascontiguousarray(array)
                value = placed[id(array)] = self._from_numpy(host, self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(self.output, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def make_runner(session: Any, provider: str, output: str, device_id: int = 0) -> BatchRunner:
    """The runner for a session on ``provider`` (``"cpu"``, ``"cuda"``, ``"tensorrt"``).

    TensorRT's EP reads inputs from the device too, so it gets the CUDA binding.
    """
    if provider == "cpu":
        return OrtRunner(session, output)
    return IoBindingRunner(session, output, "cuda", device_id)
