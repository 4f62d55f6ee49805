"""Which image encoder serves: explicit backends exactly as asked, ``auto`` down the chain
tensorrt -> openvino -> onnxruntime -> torch (``precision: auto`` on a CPU: the fastest verified
engine, measured here; precision_choice.py). Every skip, refusal and choice is recorded on
``encoder.selection`` (report.BackendSelection). When TensorRT is usable, the engine is
built/loaded in the background while the next backend serves (SwappingImageEncoder).
"""
from __future__ import annotations

import logging

from ..artifacts import model_artifact_dir
from ..devices import is_cuda, resolve_device, same_device
from .base import BackendUnavailable, ImageEncoder
from .frame_recheck import DEFAULT_RECHECK_FRAMES, RecheckingImageEncoder
from .options import validate_options
from .report import BackendSelection
from .swapping import SwappingImageEncoder

logger = logging.getLogger(__name__)


def create_image_encoder(clip, backend: str = "auto", precision: str = "fp32",
                         device: str = "cpu", cache_dir=None, threads: int = 0,
                         max_batch: int = 8, *, background_build: bool = True,
                         reference=None, recheck_frames: int = DEFAULT_RECHECK_FRAMES
                         ) -> ImageEncoder:
    """Build an image encoder for ``clip``.

    Explicit backends either deliver exactly what was asked or raise BackendUnavailable naming
    what is missing. ``auto`` tries tensorrt (device 'cuda', TensorRT importable, CUDA present;
    int8 falls to fp16 there) -> onnxruntime (CUDA EP on 'cuda' if present, else CPU; a
    precision it cannot deliver or a refused int8 model falls to fp32) -> torch fp32, and
    logs/records every skip. With ``background_build`` the TensorRT engine is built while the
    next backend serves; otherwise ``auto`` waits for it.
    ``threads``: the CPU engine's intra-op threads (onnxruntime, OpenVINO, torch), 0 = every
    core this process may use (torch: its own default).
    ``recheck_frames``: a reduced-precision CPU engine is checked again against fp32 on the
    first that many camera frames, in the background, and replaced by fp32 if it fails there
    (frame_recheck.py); 0 disables it.
    """
    validate_options(backend, precision, device, max_batch)
    device = resolve_device(device)
    from .verify import TorchReference

    reference = reference or TorchReference(
        clip, max_batch=max_batch, persist_dir=model_artifact_dir(clip, cache_dir))
    selection = BackendSelection(backend, precision, device)
    if backend == "auto":
        encoder = _auto(clip, precision, device, cache_dir, threads, max_batch, selection,
                        reference, background_build)
    elif precision == "auto" and backend in ("onnxruntime", "openvino") and device == "cpu":
        encoder = _measured(clip, [c for c in _cpu_candidates() if c.backend == backend],
                            cache_dir, threads, max_batch, selection, reference)
        if encoder is None:
            raise BackendUnavailable(f"{backend} could not deliver a verified engine: "
                                     f"{selection.summary()}")
    else:
        if precision == "auto":
            precision = "fp16" if backend == "tensorrt" else "fp32"
        encoder = _explicit(clip, backend, precision, device, cache_dir, threads, max_batch,
                            reference)
        selection.add(backend, precision, encoder.device, "chosen")
    encoder.selection = selection
    if recheck_frames and encoder.precision in ("int8", "bf16"):
        encoder = RecheckingImageEncoder(
            encoder, reference, lambda: _verified_fp32(clip, cache_dir, threads, reference,
                                                       max_batch),
            recheck_frames, max_batch)
    return encoder


def _verified_fp32(clip, cache_dir, threads, reference, max_batch):
    """The first fp32 CPU engine of the chain that loads and verifies (torch at worst)."""
    fallback = BackendSelection("auto", "fp32", "cpu")
    return _auto_cpu_or_ort(clip, "fp32", "cpu", cache_dir, threads, fallback, reference,
                            max_batch)


def _explicit(clip, backend, precision, device, cache_dir, threads, max_batch, reference):
    if backend == "torch":
        return _torch_encoder(clip, precision, device, threads)
    if backend == "openvino":
        from .openvino_backend import OpenVinoImageEncoder

        return OpenVinoImageEncoder.from_clip(clip, cache_dir, precision, threads, reference,
                                              device=device)
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


def _torch_encoder(clip, precision, device, threads: int = 0):
    from .torch_backend import TorchImageEncoder

    if precision != "fp32":
        raise BackendUnavailable(f"precision '{precision}' is not supported by the torch "
                                 "backend; expected 'fp32'")
    if not same_device(clip.device, device):
        raise BackendUnavailable(f"the torch backend runs where the model was loaded "
                                 f"('{clip.device}'), but device '{device}' was requested; "
                                 f"load the model with device='{device}'")
    return TorchImageEncoder(clip, threads)


def _auto(clip, precision, device, cache_dir, threads, max_batch, selection, reference,
          background_build):
    trt_precision = None
    if not is_cuda(device):
        selection.add("tensorrt", precision, device, "skipped",
                      f"device is '{device}'; tensorrt needs device 'cuda'",
                      lacks=f"a CUDA device (device is '{device}')")
    else:
        from . import tensorrt_backend

        trt_precision = precision if precision in tensorrt_backend.TRT_PRECISIONS else "fp16"
        if trt_precision != precision and precision != "auto":
            selection.add("tensorrt", precision, device, "skipped",
                          f"tensorrt has no {precision} path (needs calibration); trying fp16")
        try:
            tensorrt_backend.preflight(trt_precision, device)
        except BackendUnavailable as exc:
            selection.skip("tensorrt", trt_precision, device, exc)
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
                                reference, max_batch)
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


def _cpu_candidates():
    from .precision_choice import CPU_CANDIDATES, Candidate

    return [Candidate(b, p, "cpu") for b, p in CPU_CANDIDATES]


def _measured(clip, candidates, cache_dir, threads, max_batch, selection, reference):
    from .precision_choice import fastest_verified

    return fastest_verified(clip, candidates, cache_dir, threads, max_batch, reference,
                            selection)


def _auto_cpu_or_ort(clip, precision, device, cache_dir, threads, selection, reference,
                     max_batch):
    from .onnxruntime_backend import cuda_provider_available
    from .precision_choice import Candidate, try_candidate

    if is_cuda(device) and cuda_provider_available():
        candidates = [Candidate("onnxruntime", "fp32", device)]
        if precision not in ("auto", "fp32"):
            selection.add("onnxruntime", precision, device, "skipped",
                          f"onnxruntime on {device} runs fp32 only; trying fp32")
    elif is_cuda(device):
        if is_cuda(clip.device):
            # torch on a GPU beats onnxruntime on the CPU by far.
            selection.add("onnxruntime", precision, device, "skipped",
                          "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); "
                          "torch on cuda is faster than onnxruntime on cpu",
                          lacks="onnxruntime's CUDAExecutionProvider")
            return _auto_torch(clip, precision, selection, threads)
        selection.add("onnxruntime", precision, device, "skipped",
                      "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); "
                      "trying the CPU engines", lacks="onnxruntime's CUDAExecutionProvider")
        candidates = None
    else:
        candidates = None
    if candidates is None:
        everything = _cpu_candidates()
        if precision == "auto":
            encoder = _measured(clip, everything, cache_dir, threads, max_batch, selection,
                                reference)
            return encoder if encoder is not None else _auto_torch(clip, precision, selection,
                                                                    threads)
        candidates = [c for c in everything if c.precision == precision]
        if not candidates:
            selection.add("openvino/onnxruntime", precision, "cpu", "skipped",
                          f"no CPU engine runs {precision}; trying fp32")
        candidates += [c for c in everything if c.precision == "fp32" and c not in candidates]
    for c in candidates:  # explicit precision: the first that loads and verifies, chain order
        encoder = try_candidate(clip, c, cache_dir, threads, reference, selection)
        if encoder is not None:
            selection.add(c.backend, c.precision, encoder.device, "chosen")
            return encoder
    return _auto_torch(clip, precision, selection, threads)


def _auto_torch(clip, precision, selection, threads: int = 0):
    torch_device = str(clip.device)
    enc = _torch_encoder(clip, "fp32", torch_device, threads)
    reason = "" if precision in ("fp32", "auto") else f"torch runs fp32 only ({precision} requested)"
    selection.add("torch", "fp32", torch_device, "chosen", reason)
    return enc
