"""Which image encoder serves: explicit backends exactly as asked, ``auto`` down the chain
tensorrt -> onnxruntime -> torch. Every skip, refusal and choice is recorded on
``encoder.selection`` (report.BackendSelection). When TensorRT is usable, the engine is
built/loaded in the background while the next backend serves (SwappingImageEncoder).
"""
from __future__ import annotations

import logging

from ..devices import is_cuda, same_device
from .base import BackendUnavailable, ImageEncoder
from .options import validate_options
from .report import BackendSelection
from .swapping import SwappingImageEncoder

logger = logging.getLogger(__name__)


def create_image_encoder(clip, backend: str = "auto", precision: str = "fp32",
                         device: str = "cpu", cache_dir=None, threads: int = 0,
                         max_batch: int = 8, *, background_build: bool = True,
                         reference=None) -> ImageEncoder:
    """Build an image encoder for ``clip``.

    Explicit backends either deliver exactly what was asked or raise BackendUnavailable naming
    what is missing. ``auto`` tries tensorrt (device 'cuda', TensorRT importable, CUDA present;
    int8 falls to fp16 there) -> onnxruntime (CUDA EP on 'cuda' if present, else CPU; a
    precision it cannot deliver or a refused int8 model falls to fp32) -> torch fp32, and
    logs/records every skip. With ``background_build`` the TensorRT engine is built while the
    next backend serves; otherwise ``auto`` waits for it.
    ``threads``: onnxruntime intra-op threads, 0 = every core this process may use.
    """
    validate_options(backend, precision, device, max_batch)
    from .verify import TorchReference

    reference = reference or TorchReference(clip)
    selection = BackendSelection(backend, precision, device)
    if backend == "auto":
        encoder = _auto(clip, precision, device, cache_dir, threads, max_batch, selection,
                        reference, background_build)
    elif precision == "auto" and backend == "onnxruntime":
        encoder = _ort_fastest_verified(clip, device, cache_dir, threads, selection, reference,
                                        fall_back_to_torch=False)
    else:
        if precision == "auto":
            precision = "fp16" if backend == "tensorrt" else "fp32"
        encoder = _explicit(clip, backend, precision, device, cache_dir, threads, max_batch,
                            reference)
        selection.add(backend, precision, encoder.device, "chosen")
    encoder.selection = selection
    return encoder


def _explicit(clip, backend, precision, device, cache_dir, threads, max_batch, reference):
    if backend == "torch":
        return _torch_encoder(clip, precision, device)
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeImageEncoder

        return OnnxRuntimeImageEncoder.from_clip(clip, cache_dir=cache_dir, device=device,
                                                 threads=threads, precision=precision,
                                                 reference=reference)
    if not is_cuda(device):
        raise BackendUnavailable(f"backend 'tensorrt' needs device 'cuda' or 'cuda:N', "
                                 f"got '{device}'")
    from . import tensorrt_backend

    tensorrt_backend.preflight(precision, device)
    return tensorrt_backend.load_or_build_engine(clip, precision, max_batch, cache_dir,
                                                 reference, device=device).value


def _torch_encoder(clip, precision, device):
    from .torch_backend import TorchImageEncoder

    if precision != "fp32":
        raise BackendUnavailable(f"precision '{precision}' is not supported by the torch "
                                 "backend; expected 'fp32'")
    if not same_device(clip.device, device):
        raise BackendUnavailable(f"the torch backend runs where the model was loaded "
                                 f"('{clip.device}'), but device '{device}' was requested; "
                                 f"load the model with device='{device}'")
    return TorchImageEncoder(clip)


def _auto(clip, precision, device, cache_dir, threads, max_batch, selection, reference,
          background_build):
    trt_precision = None
    if not is_cuda(device):
        selection.add("tensorrt", precision, device, "skipped",
                      f"device is '{device}'; tensorrt needs device 'cuda'")
    else:
        from . import tensorrt_backend

        trt_precision = precision if precision in tensorrt_backend.TRT_PRECISIONS else "fp16"
        if trt_precision != precision and precision != "auto":
            selection.add("tensorrt", precision, device, "skipped",
                          f"tensorrt has no {precision} path (needs calibration); trying fp16")
        ok, why = tensorrt_backend.tensorrt_available(trt_precision, device)
        if not ok:
            selection.add("tensorrt", trt_precision, device, "skipped", why)
            trt_precision = None

    if trt_precision is not None and not background_build:
        from . import tensorrt_backend

        try:
            enc = tensorrt_backend.load_or_build_engine(clip, trt_precision, max_batch,
                                                        cache_dir, reference,
                                                        device=device).value
            selection.add("tensorrt", trt_precision, device, "chosen")
            return enc
        except BackendUnavailable as exc:
            selection.add("tensorrt", trt_precision, device, "refused", str(exc))
            trt_precision = None

    fallback = _auto_cpu_or_ort(clip, precision, device, cache_dir, threads, selection,
                                reference)
    if trt_precision is None:
        return fallback

    from . import tensorrt_backend

    target = f"tensorrt ({trt_precision}, {device})"

    def build():
        return tensorrt_backend.load_or_build_engine(clip, trt_precision, max_batch, cache_dir,
                                                     reference, device=device).value

    # The fallback was recorded as "chosen"; relabel it: it serves until the engine is ready.
    last = selection.attempts.pop()
    selection.add(last.backend, last.precision, last.device, "serving until swap",
                  f"{target} is built/loaded and verified in the background")
    selection.add("tensorrt", trt_precision, device, "building",
                  "see encoder.status() for building/ready/refused")
    return SwappingImageEncoder(fallback, build, target)


def _auto_cpu_or_ort(clip, precision, device, cache_dir, threads, selection, reference):
    from .onnxruntime_backend import (ORT_CPU_PRECISIONS, ORT_CUDA_PRECISIONS,
                                      cuda_provider_available)

    ort_device = device
    torch_on_cuda = is_cuda(clip.device)
    if is_cuda(device) and not cuda_provider_available():
        if torch_on_cuda:
            # torch on a GPU beats onnxruntime on the CPU by far.
            selection.add("onnxruntime", precision, device, "skipped",
                          "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); "
                          "torch on cuda is faster than onnxruntime on cpu")
            return _auto_torch(clip, precision, selection)
        selection.add("onnxruntime", precision, device, "skipped",
                      "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); "
                      "trying onnxruntime on cpu")
        ort_device = "cpu"
    supported = ORT_CUDA_PRECISIONS if is_cuda(ort_device) else ORT_CPU_PRECISIONS
    if precision == "auto":
        return _ort_fastest_verified(clip, ort_device, cache_dir, threads, selection, reference,
                                     fall_back_to_torch=True)
    candidates = [precision] if precision in supported else []
    if precision not in supported:
        selection.add("onnxruntime", precision, ort_device, "skipped",
                      f"onnxruntime on {ort_device} supports {supported}; trying fp32")
    if "fp32" not in candidates:
        candidates.append("fp32")
    return _ort_first_accepted(clip, candidates, ort_device, cache_dir, threads, selection,
                               reference, fall_back_to_torch=True, requested=precision)


def _ort_fastest_verified(clip, device, cache_dir, threads, selection, reference,
                          fall_back_to_torch):
    from .onnxruntime_backend import ORT_CPU_PRECISIONS, ORT_CUDA_PRECISIONS

    supported = ORT_CUDA_PRECISIONS if is_cuda(device) else ORT_CPU_PRECISIONS
    candidates = [p for p in ("int8", "fp32") if p in supported]
    return _ort_first_accepted(clip, candidates, device, cache_dir, threads, selection,
                               reference, fall_back_to_torch, requested="auto")


def _ort_first_accepted(clip, candidates, ort_device, cache_dir, threads, selection, reference,
                        fall_back_to_torch, requested):
    """The first onnxruntime precision in ``candidates`` that loads and passes verification."""
    from .onnxruntime_backend import OnnxRuntimeImageEncoder

    for p in candidates:
        try:
            enc = OnnxRuntimeImageEncoder.from_clip(clip, cache_dir=cache_dir, device=ort_device,
                                                    threads=threads, precision=p,
                                                    reference=reference)
        except BackendUnavailable as exc:
            from .engine_cache import ArtifactRefused

            outcome = "refused" if isinstance(exc, ArtifactRefused) else "skipped"
            selection.add("onnxruntime", p, ort_device, outcome, str(exc))
            continue
        except Exception as exc:  # e.g. export failed: recorded and logged as a warning
            selection.add("onnxruntime", p, ort_device, "failed", f"{type(exc).__name__}: {exc}")
            continue
        selection.add("onnxruntime", p, enc.device, "chosen")
        return enc
    if not fall_back_to_torch:
        raise BackendUnavailable(f"onnxruntime could not deliver any of {candidates}: "
                                 f"{selection.summary()}")
    return _auto_torch(clip, requested, selection)


def _auto_torch(clip, precision, selection):
    torch_device = str(clip.device)
    enc = _torch_encoder(clip, "fp32", torch_device)
    reason = "" if precision in ("fp32", "auto") else f"torch runs fp32 only ({precision} requested)"
    selection.add("torch", "fp32", torch_device, "chosen", reason)
    return enc
