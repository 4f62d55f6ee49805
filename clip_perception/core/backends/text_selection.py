"""Which text encoder serves label changes: onnxruntime when it agrees with torch, else torch."""
from __future__ import annotations

import logging

from ..devices import is_cuda
from .base import BackendUnavailable
from .text_onnx import OnnxRuntimeTextEncoder
from .text_torch import TorchTextEncoder

logger = logging.getLogger(__name__)

TEXT_BACKENDS = ("auto", "onnxruntime", "torch")
# Fixed prompts that both encoders must agree on before the ONNX one is used.
VERIFY_PROMPTS = ("a photo of a dog.", "a red door", "a close-up photo of a stop sign.",
                  "x", "a blurry photo of the large office chair next to a window.")
TEXT_MIN_COSINE = 0.9999  # fp32 vs fp32: only summation order differs


def _torch_text(clip):
    enc = TorchTextEncoder(clip)
    enc.describe = lambda: f"torch text (fp32, {clip.device}, trimmed={enc.trim_context})"
    return enc


def create_text_encoder(clip, backend: str = "auto", cache_dir=None, threads: int = 0):
    """A text encoder with ``encode(prompts) -> (N, D)``; ``.selection`` lists what was tried.

    ``auto``: onnxruntime on CPU models when it imports, exports and agrees with torch on fixed
    prompts (cosine >= 0.9999); otherwise torch (CUDA models always use torch: the text tower
    runs only on label changes and torch on a GPU is fast enough).
    """
    if backend not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend '{backend}'; expected one of {TEXT_BACKENDS}")
    reasons: list[str] = []
    if backend == "torch":
        enc = _torch_text(clip)
    elif backend == "auto" and is_cuda(clip.device):
        reasons.append("onnxruntime text skipped: model is on CUDA, torch is used there")
        enc = _torch_text(clip)
    else:
        try:
            enc = _verified_ort_text(clip, cache_dir, threads)
        except Exception as exc:
            if backend == "onnxruntime":
                if isinstance(exc, BackendUnavailable):
                    raise
                raise BackendUnavailable(f"onnxruntime text encoder failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
            reasons.append(f"onnxruntime text skipped: {exc}")
            logger.warning("text encoder: %s; using torch", reasons[-1])
            enc = _torch_text(clip)
    logger.info("text encoder: %s%s", enc.describe(), f" ({'; '.join(reasons)})" if reasons else "")
    enc.selection = reasons
    return enc


def _verified_ort_text(clip, cache_dir, threads):
    enc = OnnxRuntimeTextEncoder(clip, cache_dir, threads)
    ref = TorchTextEncoder(clip).encode(list(VERIFY_PROMPTS))
    got = enc.encode(list(VERIFY_PROMPTS))
    cos = float((ref * got).sum(axis=1).min())
    if not cos >= TEXT_MIN_COSINE:
        raise BackendUnavailable(f"onnxruntime text tower disagrees with torch: min cosine "
                                 f"{cos:.6f} < {TEXT_MIN_COSINE}")
    return enc
