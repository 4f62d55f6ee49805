"""Image backends behind one interface: ``encode_images(batch) -> (N, D)`` float32, L2-normed.

Heavy imports (onnxruntime, tensorrt) happen inside the backend that needs them.
"""
from __future__ import annotations

from .base import (ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder,
                   check_batch)

BACKENDS = ("torch", "onnxruntime")


def create_image_encoder(clip, backend: str = "torch", cache_dir=None, device: str = "cpu",
                         threads: int = 0) -> ImageEncoder:
    """Build the named backend for ``clip``; an unknown or unavailable one is an error."""
    if backend == "torch":
        from .torch_backend import TorchImageEncoder

        return TorchImageEncoder(clip)
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeImageEncoder

        return OnnxRuntimeImageEncoder.from_clip(clip, cache_dir=cache_dir, device=device,
                                                 threads=threads)
    raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")


__all__ = ["ONNX_INPUT_NAME", "ONNX_OUTPUT_NAME", "BACKENDS", "BackendUnavailable",
           "ImageEncoder", "check_batch", "create_image_encoder"]
