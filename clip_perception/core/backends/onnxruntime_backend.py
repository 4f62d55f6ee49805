"""ONNX Runtime image backend (CPU execution provider, CUDA EP when present)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..artifacts import model_artifact_dir
from .base import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder, check_batch
from .onnx_export import export_image_tower

logger = logging.getLogger(__name__)


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime is not importable ({exc}); "
                                 "install 'onnxruntime' or 'onnxruntime-gpu'") from exc
    return onnxruntime


def image_onnx_path(clip, cache_dir=None) -> Path:
    return model_artifact_dir(clip, cache_dir) / f"image_fp32_{clip.image_size}px.onnx"


def ensure_image_onnx(clip, cache_dir=None) -> Path:
    """The exported fp32 image tower for ``clip``, exporting it once per weights hash."""
    path = image_onnx_path(clip, cache_dir)
    if not path.is_file():
        export_image_tower(clip, path)
    return path


class OnnxRuntimeImageEncoder(ImageEncoder):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, image_size: int, device: str = "cpu",
                 threads: int = 0, precision: str = "fp32"):
        ort = import_onnxruntime()
        self.image_size = image_size
        self.precision = precision
        self.onnx_path = Path(onnx_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable(
                    f"device '{device}' requested but onnxruntime has no CUDAExecutionProvider "
                    f"(available: {ort.get_available_providers()}); install onnxruntime-gpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options,
                                            providers=providers)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        names = [i.name for i in self.session.get_inputs()]
        if names != [ONNX_INPUT_NAME]:
            raise ValueError(f"{self.onnx_path}: inputs {names}, expected [{ONNX_INPUT_NAME!r}]")

    @classmethod
    def from_clip(cls, clip, cache_dir=None, device: str = "cpu", threads: int = 0):
        return cls(ensure_image_onnx(clip, cache_dir), clip.image_size, device=device,
                   threads=threads)

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.image_size)
        (out,) = self.session.run([ONNX_OUTPUT_NAME], {ONNX_INPUT_NAME: batch})
        return np.asarray(out, dtype=np.float32)
