"""Image backends behind one interface: ``encode_images(batch) -> (N, D)`` float32, L2-normed.

Heavy imports (onnxruntime, tensorrt) happen inside the backend that needs them. Modules:
``base`` (the interface), ``options`` (valid backend/precision names), ``selection`` (which
encoder serves), ``report`` (what selection tried, for diagnostics), one module per engine,
``onnx_export`` / ``int8`` (artifacts built from the model), ``engine_cache`` (keyed, verified
artifacts), ``verify`` (comparison with the torch reference), ``text_*`` (the text tower).
"""
from .base import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder, check_batch
from .options import BACKENDS, PRECISIONS
from .report import BackendAttempt, BackendSelection, encoder_diagnostics
from .selection import create_image_encoder
from .swapping import SwappingImageEncoder, SwapStatus

__all__ = ["ONNX_INPUT_NAME", "ONNX_OUTPUT_NAME", "BACKENDS", "PRECISIONS",
           "BackendAttempt", "BackendSelection", "BackendUnavailable", "ImageEncoder",
           "SwapStatus", "SwappingImageEncoder", "check_batch", "create_image_encoder",
           "encoder_diagnostics"]
