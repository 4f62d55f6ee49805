"""ONNX Runtime image backend (CPU execution provider, CUDA EP when present).

A session on an ONNX file: the fp32 export or, on CPU, the int8 tower of ``int8.py``. Which file,
and its verification against torch fp32, is the engine table's (engines.py).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ..devices import cpu_count, is_cuda
from .base import (ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, BackendUnavailable, ImageEncoder,
                   MissingCapability, check_batch)

logger = logging.getLogger(__name__)


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingCapability(f"onnxruntime is not importable ({exc}); "
                                "install 'onnxruntime' or 'onnxruntime-gpu'",
                                "the onnxruntime library") from exc
    return onnxruntime


def cuda_provider_available() -> bool:
    try:
        ort = import_onnxruntime()
    except BackendUnavailable:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def check_capability(precision: str, device: str) -> None:
    """MissingCapability naming what this machine lacks to run ``precision`` (of the engine
    table's onnxruntime rows) on ``device``: the library, its CUDA provider, its int8 kernels."""
    ort = import_onnxruntime()
    if is_cuda(device) and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise MissingCapability(f"onnxruntime has no CUDAExecutionProvider (available: "
                                f"{ort.get_available_providers()}); install onnxruntime-gpu",
                                "onnxruntime's CUDAExecutionProvider")
    if precision == "int8":
        check_int8_kernels(ort)


def check_int8_kernels(ort) -> None:
    """int8 needs the CPU execution provider (its MatMulInteger kernels: u8u8 with 32-bit sums
    on any x86 CPU) and onnxruntime's quantisation tool; BackendUnavailable naming what is
    missing."""
    providers = ort.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        raise MissingCapability(f"onnxruntime int8 runs on its CPUExecutionProvider; this "
                                f"build offers {providers}", "onnxruntime's CPUExecutionProvider")
    if importlib.util.find_spec("onnxruntime.quantization") is None:
        raise MissingCapability("onnxruntime int8 needs onnxruntime.quantization, which this "
                                f"onnxruntime {ort.__version__} lacks",
                                "onnxruntime.quantization")


def session_options(ort, threads: int = 0, spinning: bool = False):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads if threads > 0 else cpu_count()
    # Spinning makes idle pool threads busy-wait after each run; in a node whose executor,
    # image conversion and preprocessing share the same cores, that steals CPU from them.
    # docs/results/engines.md measures both settings.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


class OnnxRuntimeImageEncoder(ImageEncoder):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, image_size: int, device: str = "cpu",
                 threads: int = 0, precision: str = "fp32", spinning: bool = False):
        ort = import_onnxruntime()
        if precision == "int8":
            check_int8_kernels(ort)
        self.image_size = image_size
        self.precision = precision
        self.onnx_path = Path(onnx_path)
        options = session_options(ort, threads, spinning)
        self.threads = options.intra_op_num_threads
        if is_cuda(device):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise MissingCapability(
                    f"device '{device}' requested but onnxruntime has no CUDAExecutionProvider "
                    f"(available: {ort.get_available_providers()}); install onnxruntime-gpu",
                    "onnxruntime's CUDAExecutionProvider")
            index = int(device[5:]) if device.startswith("cuda:") else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ValueError(f"device '{device}' not understood; expected 'cpu' or 'cuda'")
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options,
                                            providers=providers)
        if is_cuda(device) and \
                self.session.get_providers()[0] != "CUDAExecutionProvider":
            # onnxruntime quietly drops to the CPU when the CUDA EP cannot start (e.g. cuDNN
            # missing); a cuda request must not end up on the CPU without anyone knowing.
            raise MissingCapability(
                f"device '{device}' requested but onnxruntime could not start its "
                f"CUDAExecutionProvider (session providers: {self.session.get_providers()}); "
                "check the CUDA/cuDNN libraries onnxruntime-gpu needs",
                "the CUDA/cuDNN libraries of onnxruntime-gpu")
        self.device = device
        names = [i.name for i in self.session.get_inputs()]
        if names != [ONNX_INPUT_NAME]:
            raise ValueError(f"{self.onnx_path}: inputs {names}, expected [{ONNX_INPUT_NAME!r}]")

    @property
    def batches(self) -> bool:  # type: ignore[override]
        return self.precision != "int8"  # see encode_images

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.image_size)
        if not self.batches and len(batch) > 1:
            # Dynamic int8 takes one activation range per tensor, i.e. over the whole batch:
            # one camera's frame would change another's embedding (cosine 0.99985 measured).
            # Frame by frame costs ~10 % of int8 throughput at batch 8 (docs/results/engines.md).
            return np.concatenate([self._run(batch[i:i + 1]) for i in range(len(batch))])
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([ONNX_OUTPUT_NAME], {ONNX_INPUT_NAME: batch})
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self.session = None

