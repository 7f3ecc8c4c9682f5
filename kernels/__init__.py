"""umr.kernels: one pooling op (mean/CLS/last token, optional Matryoshka truncation, L2) in
several backends, all checked against the NumPy reference.

- :mod:`~umr.kernels.reference`: NumPy, the ground truth.
- :mod:`~umr.kernels.onnx_pooling`: plain ONNX ops as a model-local function (every ORT provider).
- :mod:`~umr.kernels.triton_pool`: a Triton kernel for torch tensors (needs torch, triton).
- :mod:`~umr.kernels.trt_plugin`: the Triton kernel as a TensorRT plugin (needs tensorrt).

Nothing is imported here, so ``import umr.kernels`` pulls neither torch nor triton.
"""
