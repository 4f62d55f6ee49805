"""Check an accelerated encoder against a reference on fixed inputs before it is used.

Every engine (TensorRT) and every reduced-precision model (ONNX Runtime int8) is compared with
the torch fp32 reference on the same deterministic batch; below the threshold it is refused.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MIN_COSINE = 0.999
VERIFY_BATCH = 4  # fixed inputs per check; also exercises a batch > 1 on dynamic-batch engines
VERIFY_SEED = 1234


@dataclass(frozen=True)
class Verification:
    """Outcome of comparing a candidate's embeddings with the reference on fixed inputs."""

    ok: bool
    min_cosine: float
    threshold: float
    reason: str = ""

    def __str__(self) -> str:
        return self.reason or f"min cosine {self.min_cosine:.5f} >= {self.threshold}"


def verification_inputs(image_size: int, mean=(0.48145466, 0.4578275, 0.40821073),
                        std=(0.26862954, 0.26130258, 0.27577711), count: int = VERIFY_BATCH,
                        seed: int = VERIFY_SEED) -> np.ndarray:
    """A deterministic (count, 3, S, S) float32 batch that looks like normalised photos.

    Pure white noise is a poor proxy for camera frames (activations differ, and reduced
    precision errors show up differently), so each image mixes smooth colour blobs (upsampled
    low-resolution noise) with mild pixel noise, in [0, 255] before mean/std normalisation.
    """
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(count, 3, 8, 8)).astype(np.float32)
    reps = -(-image_size // 8)
    smooth = np.repeat(np.repeat(low, reps, axis=2), reps, axis=3)[:, :, :image_size, :image_size]
    pixels = np.clip(smooth + rng.normal(0, 20, size=smooth.shape), 0, 255) / 255.0
    mean = np.asarray(mean, np.float32)[None, :, None, None]
    std = np.asarray(std, np.float32)[None, :, None, None]
    return np.ascontiguousarray(((pixels - mean) / std).astype(np.float32))


def clip_verification_inputs(clip) -> np.ndarray:
    cfg = clip.preprocess
    return verification_inputs(clip.image_size, cfg.mean, cfg.std)


def compare_embeddings(candidate: np.ndarray, reference: np.ndarray,
                       threshold: float = DEFAULT_MIN_COSINE,
                       what: str = "candidate") -> Verification:
    """Row-wise cosine between two (N, D) embedding sets; ok when every row >= threshold."""
    candidate = np.asarray(candidate, np.float32)
    reference = np.asarray(reference, np.float32)
    if candidate.shape != reference.shape:
        return Verification(False, float("nan"), threshold,
                            f"{what} output shape {candidate.shape} != reference {reference.shape}")
    if not np.all(np.isfinite(candidate)):
        return Verification(False, float("nan"), threshold,
                            f"{what} produced non-finite values (NaN/inf; fp16 overflow?)")
    num = (candidate * reference).sum(axis=1)
    den = np.linalg.norm(candidate, axis=1) * np.linalg.norm(reference, axis=1)
    cos = float((num / np.maximum(den, 1e-12)).min())
    if cos < threshold:
        return Verification(False, cos, threshold,
                            f"{what} min cosine to reference {cos:.5f} < required {threshold}")
    return Verification(True, cos, threshold, "")


def verify_encoder(encoder, inputs: np.ndarray, reference: np.ndarray,
                   threshold: float = DEFAULT_MIN_COSINE) -> Verification:
    """Run ``encoder`` on ``inputs`` and compare with ``reference``; exceptions are refusals."""
    what = encoder.describe() if hasattr(encoder, "describe") else type(encoder).__name__
    try:
        out = encoder.encode_images(inputs)
    except Exception as exc:  # a broken engine must be refused, not crash the caller
        return Verification(False, float("nan"), threshold, f"{what} failed on verification "
                                                           f"inputs: {type(exc).__name__}: {exc}")
    return compare_embeddings(out, reference, threshold, what)


class TorchReference:
    """Torch fp32 embeddings of the fixed inputs, computed once per model and reused.

    Thread-safe: a background engine build and the caller may both ask for it.
    """

    def __init__(self, clip):
        self.clip = clip
        self._inputs = None
        self._embeddings = None
        self._lock = threading.Lock()

    @property
    def inputs(self) -> np.ndarray:
        with self._lock:
            if self._inputs is None:
                self._inputs = clip_verification_inputs(self.clip)
            return self._inputs

    @property
    def embeddings(self) -> np.ndarray:
        inputs = self.inputs
        with self._lock:
            if self._embeddings is None:
                from .torch_backend import TorchImageEncoder

                self._embeddings = TorchImageEncoder(self.clip).encode_images(inputs)
            return self._embeddings

    def verify(self, encoder, threshold: float = DEFAULT_MIN_COSINE) -> Verification:
        return verify_encoder(encoder, self.inputs, self.embeddings, threshold)
