"""Image backends behind one interface: ``encode_images(batch) -> (N, D)`` float32, L2-normed.

Heavy imports (onnxruntime, openvino, tensorrt, torch) happen inside the engine module that
needs them. Modules: ``base`` (the interface, the errors), ``engines`` (the table: one row per
backend x precision with devices, capability check, builder, reduced-or-not; the valid option
names), ``encoder_choice`` (which encoder serves), ``precision_choice`` (``precision: auto`` on
a CPU), ``choice_report`` (what the choice tried, for diagnostics), one module per engine
(wrapping a session), ``onnx_export`` / ``int8`` / ``smoothquant`` (artifacts built from the
model), ``engine_cache`` (keyed, verified artifacts), ``verify`` (comparison with the torch
reference), ``frame_recheck``, ``swapping``, ``text_*`` (the text tower).
"""
from .base import (ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder,
                   MissingCapability, check_batch)
from .choice_report import BackendAttempt, BackendSelection, encoder_diagnostics
from .encoder_choice import create_image_encoder
from .engines import BACKENDS, ENGINES, PRECISIONS
from .swapping import SwappingImageEncoder, SwapStatus

__all__ = ["ONNX_INPUT_NAME", "ONNX_OUTPUT_NAME", "BACKENDS", "ENGINES", "PRECISIONS",
           "BackendAttempt", "BackendSelection", "BackendUnavailable", "ImageEncoder",
           "MissingCapability", "SwapStatus", "SwappingImageEncoder", "check_batch",
           "create_image_encoder", "encoder_diagnostics"]
