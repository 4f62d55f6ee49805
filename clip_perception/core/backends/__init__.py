"""Image backends behind one interface: ``encode_images(batch) -> (N, D)`` float32, L2-normed.

Heavy imports (onnxruntime, tensorrt) happen inside the backend that needs them.
"""
from __future__ import annotations

from .base import (ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder,
                   check_batch)

BACKENDS = ("torch", "onnxruntime")


PRECISIONS = ("fp32", "fp16", "int8")


def create_image_encoder(clip, backend: str = "torch", precision: str = "fp32",
                         device: str = "cpu", cache_dir=None, threads: int = 0,
                         max_batch: int = 8) -> ImageEncoder:
    """Build the named backend for ``clip``; an unknown or unavailable one is an error."""
    if precision != "fp32":
        raise BackendUnavailable(f"precision '{precision}' is not supported by backend '{backend}'")
    if backend == "torch":
        from .torch_backend import TorchImageEncoder

        return TorchImageEncoder(clip)
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeImageEncoder

        return OnnxRuntimeImageEncoder.from_clip(clip, cache_dir=cache_dir, device=device,
                                                 threads=threads)
    raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")


__all__ = ["ONNX_INPUT_NAME", "ONNX_OUTPUT_NAME", "BACKENDS", "PRECISIONS", "BackendUnavailable",
           "ImageEncoder", "check_batch", "create_image_encoder"]
