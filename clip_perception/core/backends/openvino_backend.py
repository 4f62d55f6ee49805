"""OpenVINO image backend (Intel's runtime; runs on any x86 CPU), from the same ONNX export.

Precisions: fp32, and bf16 where OpenVINO reports the CPU can run it natively (AMX or
AVX-512 BF16: ``OPTIMIZATION_CAPABILITIES`` lists ``BF16``). Elsewhere OpenVINO would quietly
run a bf16 request in fp32, so bf16 is refused there with the capabilities it found.
Every model is verified against torch fp32 on natural photographs before it serves.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from ..devices import cpu_count
from .base import BackendUnavailable, ImageEncoder, MissingCapability, check_batch
from .onnx_export import with_image_onnx
from .verify import DEFAULT_MIN_COSINE, require_verified

logger = logging.getLogger(__name__)

OV_PRECISIONS = ("fp32", "bf16")
# precision -> the name of its ``openvino.Type`` member: the hint given to compile_model, and
# the Type the compiled model must report back. OpenVINO answers with a Type object whose str()
# is "<Type: 'bfloat16'>", so compare Types, never names (a substring test for "bf16" refused
# every bf16 model on AMX CPUs).
_TYPES = {"fp32": "f32", "bf16": "bf16"}


def import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise MissingCapability(f"openvino is not importable ({exc}); install 'openvino' "
                                "(pip install openvino)", "the openvino library") from exc
    return openvino


def cpu_capabilities(core=None) -> tuple:
    """What OpenVINO says the CPU runs natively, e.g. ('FP32', 'INT8', 'BIN', 'EXPORT_IMPORT')."""
    core = core or import_openvino().Core()
    return tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_name(core=None) -> str:
    core = core or import_openvino().Core()
    return str(core.get_property("CPU", "FULL_DEVICE_NAME"))


def compiled_as(ov, compiled_type, precision: str) -> bool:
    """True when OpenVINO's reported ``INFERENCE_PRECISION_HINT`` (an ``openvino.Type``) is
    ``precision``'s Type."""
    return compiled_type == getattr(ov.Type, _TYPES[precision])


def check_precision(precision: str, device: str, core=None) -> None:
    """BackendUnavailable naming what is missing when openvino cannot run ``precision`` here."""
    if device != "cpu":
        raise BackendUnavailable(f"backend 'openvino' runs on device 'cpu' here, got '{device}' "
                                 "(NVIDIA GPUs: use tensorrt or onnxruntime)")
    if precision not in OV_PRECISIONS:
        raise BackendUnavailable(f"precision '{precision}' is not supported by the openvino "
                                 f"backend; expected one of {OV_PRECISIONS} (int8: onnxruntime)")
    if precision == "bf16":
        caps = cpu_capabilities(core)
        if "BF16" not in caps:
            raise MissingCapability(
                f"openvino bf16 needs a CPU with AMX or AVX-512 BF16; this CPU "
                f"({cpu_name(core)}) offers {', '.join(caps)}", "AMX or AVX-512 BF16")


class OpenVinoImageEncoder(ImageEncoder):
    name = "openvino"

    def __init__(self, onnx_path, image_size: int, precision: str = "fp32", threads: int = 0,
                 device: str = "cpu"):
        ov = import_openvino()
        core = ov.Core()
        check_precision(precision, device, core)
        self.image_size = image_size
        self.precision = precision
        self.device = device
        self.onnx_path = onnx_path
        self.threads = threads if threads > 0 else cpu_count()
        config = {"INFERENCE_PRECISION_HINT": _TYPES[precision],
                  "INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY"}
        self._compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        got = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        if not compiled_as(ov, got, precision):
            raise BackendUnavailable(f"openvino compiled {onnx_path} for {got}, not "
                                     f"{precision} as requested")
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.output(0)
        self._lock = threading.Lock()  # one infer request: one caller at a time

    @classmethod
    def from_clip(cls, clip, cache_dir=None, precision: str = "fp32", threads: int = 0,
                  reference=None, min_cosine: float = DEFAULT_MIN_COSINE,
                  device: str = "cpu") -> "OpenVinoImageEncoder":
        """The exported tower compiled by OpenVINO, verified when ``reference`` is given."""
        check_precision(precision, device)  # before a (slow) export
        def use(path):
            encoder = cls(path, clip.image_size, precision, threads, device)
            if reference is not None:
                require_verified(encoder, reference, min_cosine, path)
            return encoder

        return with_image_onnx(clip, cache_dir, use)

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.image_size)
        with self._lock:
            result = self._request.infer({0: batch})
            return np.array(result[self._output], dtype=np.float32)

    def close(self) -> None:
        self._request = None
        self._compiled = None
