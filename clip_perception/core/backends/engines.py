"""The one table of image engines: a row per (backend, precision) with the devices it runs on,
its capability check, its builder and whether it is a reduced precision.

Encoder choice (``auto`` and explicit requests), ``precision: auto`` (precision_choice.py), the
frame re-check and the node's parameter validation all read this table; the engine modules
only wrap a session. A new engine is one module and one row here.

A row's ``check(device)`` raises base.MissingCapability when this machine lacks what the engine
needs (a library, a GPU, a CPU feature) and BackendUnavailable for anything else; its
``build(...)`` returns the encoder verified against the torch fp32 reference (export, quantise
or compile as needed, through the artifact caches).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..devices import is_cuda, same_device, validate_device
from . import int8
from . import onnxruntime_backend as ortb
from . import openvino_backend as ovb
from . import tensorrt_backend as trtb
from .base import BackendUnavailable, ImageEncoder
from .onnx_export import ensure_image_onnx, with_image_onnx
from .torch_backend import TorchImageEncoder
from .verify import DEFAULT_MIN_COSINE, require_verified


@dataclass(frozen=True)
class Engine:
    backend: str
    precision: str
    devices: tuple            # "cpu" and/or "cuda" (any cuda:N)
    reduced: bool             # below fp32: re-checked on camera frames, fp32 kept as fallback
    check: Callable           # (device) -> None; MissingCapability / BackendUnavailable
    build: Callable           # (clip, device, cache_dir, threads, reference, max_batch) -> encoder
    default: bool = False     # the backend's precision when ``precision: auto`` is not measured
    timed: bool = True        # a candidate of ``precision: auto`` on its devices

    def runs_on(self, device: str) -> bool:
        return ("cuda" if is_cuda(device) else device) in self.devices

    def __str__(self) -> str:
        return f"{self.backend} {self.precision}"


# ---- builders -----------------------------------------------------------------------------

def _openvino(precision):
    def build(clip, device, cache_dir, threads, reference, max_batch):
        def use(path):
            encoder = ovb.OpenVinoImageEncoder(path, clip.image_size, precision, threads, device)
            if reference is not None:
                require_verified(encoder, reference, DEFAULT_MIN_COSINE, path)
            return encoder

        return with_image_onnx(clip, cache_dir, use)
    return build


def _onnxruntime_fp32(clip, device, cache_dir, threads, reference, max_batch):
    def use(path):
        encoder = ortb.OnnxRuntimeImageEncoder(path, clip.image_size, device=device,
                                               threads=threads)
        if reference is not None:  # a stale or broken export must not serve unnoticed
            require_verified(encoder, reference, DEFAULT_MIN_COSINE, path)
        return encoder

    return with_image_onnx(clip, cache_dir, use)


def _onnxruntime_int8(clip, device, cache_dir, threads, reference, max_batch):
    return int8.load_or_quantize_int8(clip, ensure_image_onnx(clip, cache_dir), cache_dir,
                                      threads=threads, reference=reference).value


def _tensorrt(precision):
    def build(clip, device, cache_dir, threads, reference, max_batch):
        return trtb.load_or_build_engine(clip, precision, max_batch, cache_dir, reference,
                                         device=device).value
    return build


def _torch(clip, device, cache_dir, threads, reference, max_batch):
    if not same_device(clip.device, device):
        raise BackendUnavailable(f"the torch backend runs where the model was loaded "
                                 f"('{clip.device}'), but device '{device}' was requested; "
                                 f"load the model with device='{device}'")
    return TorchImageEncoder(clip, threads)


# ---- capability checks ----------------------------------------------------------------------

def _no_check(device):
    return None


# Chain order: ``backend: auto`` tries the backends in this order; within ``precision: auto``
# the order only breaks exact speed ties.
ENGINES = (
    Engine("tensorrt", "fp16", ("cuda",), True, lambda d: trtb.preflight("fp16", d),
           _tensorrt("fp16"), default=True),
    Engine("tensorrt", "fp32", ("cuda",), False, lambda d: trtb.preflight("fp32", d),
           _tensorrt("fp32")),
    Engine("openvino", "bf16", ("cpu",), True, lambda d: ovb.check_capability("bf16"),
           _openvino("bf16")),
    Engine("openvino", "fp32", ("cpu",), False, lambda d: ovb.check_capability("fp32"),
           _openvino("fp32"), default=True),
    Engine("onnxruntime", "int8", ("cpu",), True, lambda d: ortb.check_capability("int8", d),
           _onnxruntime_int8),
    Engine("onnxruntime", "fp32", ("cpu", "cuda"), False, lambda d: ortb.check_capability("fp32", d),
           _onnxruntime_fp32, default=True),
    Engine("torch", "fp32", ("cpu", "cuda"), False, _no_check, _torch, default=True,
           timed=False),
)

BACKENDS = ("auto",) + tuple(dict.fromkeys(e.backend for e in ENGINES))
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")
PRECISIONS = ("auto",) + tuple(p for p in PRECISION_ORDER if any(e.precision == p
                                                                  for e in ENGINES))


def find(backend: str, precision: str):
    """The row of (backend, precision), or None."""
    return next((e for e in ENGINES if (e.backend, e.precision) == (backend, precision)), None)


def precisions(backend: str, device: str) -> tuple:
    return tuple(e.precision for e in ENGINES if e.backend == backend and e.runs_on(device))


def default_precision(backend: str) -> str:
    return next(e.precision for e in ENGINES if e.backend == backend and e.default)


def candidates(device: str = "cpu", backend: str | None = None) -> list:
    """The rows ``precision: auto`` measures on ``device`` (of ``backend`` when given)."""
    return [e for e in ENGINES if e.timed and e.runs_on(device)
            and (backend is None or e.backend == backend)]


def serving_row(encoder: ImageEncoder):
    """The row of the engine ``encoder`` runs (None for an encoder outside the table)."""
    return find(encoder.name, encoder.precision)


def request_problem(backend: str, precision: str, device: str) -> str:
    """Why no engine can serve this explicit request on any machine ('' when one can): the
    reason create_image_encoder raises and the node rejects its parameters with."""
    if backend == "auto" or precision == "auto":
        return ""
    places = ("cpu", "cuda") if device == "auto" else (device,)
    devices = find_devices(backend)
    if not any(("cuda" if is_cuda(d) else d) in devices for d in places):
        if devices == ("cuda",):
            return f"backend '{backend}' needs device 'cuda' or 'cuda:N', got '{device}'"
        return (f"backend '{backend}' runs on device {' or '.join(map(repr, devices))} here, "
                f"got '{device}'")
    row = find(backend, precision)
    if row is None or not any(row.runs_on(d) for d in places):
        offered = tuple(dict.fromkeys(p for d in places for p in precisions(backend, d)))
        return (f"precision '{precision}' is not supported by the {backend} backend on "
                f"'{device}'; expected one of {offered}")
    return ""


def find_devices(backend: str) -> tuple:
    return tuple(dict.fromkeys(d for e in ENGINES if e.backend == backend for d in e.devices))


def build(engine: Engine, clip, device: str, cache_dir=None, threads: int = 0, reference=None,
          max_batch: int = 8):
    """The verified encoder of ``engine`` on ``device``: its capability check, then its
    builder. Raises MissingCapability, ArtifactRefused or BackendUnavailable with the reason."""
    engine.check(device)
    return engine.build(clip, device, cache_dir, threads, reference, max_batch)


def build_requested(backend: str, precision: str, device: str, clip, cache_dir=None,
                    threads: int = 0, reference=None, max_batch: int = 8):
    """An explicit (backend, precision) request: exactly that engine or BackendUnavailable."""
    problem = request_problem(backend, precision, device)
    if problem:
        raise BackendUnavailable(problem)
    return build(find(backend, precision), clip, device, cache_dir, threads, reference,
                 max_batch)


def validate_options(backend: str, precision: str, device: str, max_batch: int) -> None:
    """ValueError naming the bad value and the expected ones."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; expected one of {PRECISIONS}")
    validate_device(device)
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
