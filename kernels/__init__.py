"""umr.kernels"""
