"""Which image encoder serves: explicit backends exactly as asked, ``auto`` down the chain
tensorrt -> openvino -> onnxruntime -> torch (``precision: auto`` on a CPU: the fastest verified
engine, measured here; precision_choice.py). The engines, their devices, checks and builders
are the table of engines.py. Every skip, refusal and choice is recorded on
``encoder.selection`` (choice_report.BackendSelection). When TensorRT is usable, the engine is
built/loaded in the background while the next backend serves (SwappingImageEncoder).
"""
from __future__ import annotations

import logging

from ..artifacts import model_artifact_dir
from ..devices import is_cuda, resolve_device
from . import engines
from . import onnxruntime_backend as ortb
from .base import BackendUnavailable, ImageEncoder
from .choice_report import BackendSelection
from .frame_recheck import DEFAULT_RECHECK_FRAMES, RecheckingImageEncoder
from .precision_choice import Candidate, cpu_candidates, fastest_verified, try_candidate
from .swapping import SwappingImageEncoder
from .verify import TorchReference

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
    engines.validate_options(backend, precision, device, max_batch)
    device = resolve_device(device)
    reference = reference or TorchReference(
        clip, max_batch=max_batch, persist_dir=model_artifact_dir(clip, cache_dir))
    selection = BackendSelection(backend, precision, device)
    if backend == "auto":
        encoder = _auto(clip, precision, device, cache_dir, threads, max_batch, selection,
                        reference, background_build)
    elif precision == "auto" and device == "cpu" and len(cpu_candidates(backend)) > 1:
        encoder = fastest_verified(clip, cpu_candidates(backend), cache_dir, threads,
                                   max_batch, reference, selection)
        if encoder is None:
            raise BackendUnavailable(f"{backend} could not deliver a verified engine: "
                                     f"{selection.summary()}")
    else:
        if precision == "auto":
            precision = engines.default_precision(backend)
        encoder = engines.build_requested(backend, precision, device, clip, cache_dir, threads,
                                          reference, max_batch)
        selection.add(backend, precision, encoder.device, "chosen")
    encoder.selection = selection
    row = engines.serving_row(encoder)
    # A reduced CPU engine asked for on the CPU (on 'cuda' a CPU engine only serves until the
    # TensorRT engine swaps in).
    if recheck_frames and row is not None and row.reduced and not is_cuda(device):
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


def _auto(clip, precision, device, cache_dir, threads, max_batch, selection, reference,
          background_build):
    trt_precision = None
    if not is_cuda(device):
        selection.add("tensorrt", precision, device, "skipped",
                      f"device is '{device}'; tensorrt needs device 'cuda'",
                      lacks=f"a CUDA device (device is '{device}')")
    else:
        # A requested precision of the table, else its tensorrt rows in order (fp16, then fp32:
        # a GPU without fast fp16, or a TensorRT without weak typing, still gets TensorRT).
        tries = [precision] if engines.find("tensorrt", precision) else \
            list(engines.precisions("tensorrt", device))
        if precision not in tries and precision != "auto":
            selection.add("tensorrt", precision, device, "skipped",
                          f"tensorrt has no {precision} path (needs calibration); trying "
                          f"{', '.join(tries)}")
        for candidate in tries:
            try:
                engines.find("tensorrt", candidate).check(device)
            except BackendUnavailable as exc:
                selection.skip("tensorrt", candidate, device, exc)
                continue
            trt_precision = candidate
            break

    if trt_precision is not None and not background_build:
        try:
            enc = engines.find("tensorrt", trt_precision).build(
                clip, device, cache_dir, threads, reference, max_batch)
            selection.add("tensorrt", trt_precision, device, "chosen")
            return enc
        except BackendUnavailable as exc:
            selection.add("tensorrt", trt_precision, device, "refused", str(exc))
            trt_precision = None

    fallback = _auto_cpu_or_ort(clip, precision, device, cache_dir, threads, selection,
                                reference, max_batch)
    if trt_precision is None:
        return fallback

    target = f"tensorrt ({trt_precision}, {device})"
    engine = engines.find("tensorrt", trt_precision)

    def build():
        return engine.build(clip, device, cache_dir, threads, reference, max_batch)

    # The fallback was recorded as "chosen"; relabel it: it serves until the engine is ready.
    last = selection.attempts.pop()
    selection.add(last.backend, last.precision, last.device, "serving until swap",
                  f"{target} is built/loaded and verified in the background")
    selection.add("tensorrt", trt_precision, device, "building",
                  "see encoder.status() for building/ready/refused")
    return SwappingImageEncoder(fallback, build, target)


def _auto_cpu_or_ort(clip, precision, device, cache_dir, threads, selection, reference,
                     max_batch):
    if is_cuda(device) and ortb.cuda_provider_available():
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
        everything = cpu_candidates()
        if precision == "auto":
            encoder = fastest_verified(clip, everything, cache_dir, threads, max_batch,
                                       reference, selection)
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
    enc = engines.build(engines.find("torch", "fp32"), clip, torch_device, threads=threads)
    reason = "" if precision in ("fp32", "auto") else f"torch runs fp32 only ({precision} requested)"
    selection.add("torch", "fp32", torch_device, "chosen", reason)
    return enc
