"""umr.kernels: the pooling + L2 subgraph (ONNX) and its NumPy reference."""
