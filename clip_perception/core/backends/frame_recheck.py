"""Re-check a reduced-precision engine on the robot's own frames, once, in the background.

The startup verification uses sample photographs; a robot's camera may see something else
(night, glare, a texture that drives an outlier channel). ``RecheckingImageEncoder`` serves
with the verified reduced-precision engine, keeps a copy of the first ``frames`` camera frames
it encodes, then compares that engine with torch fp32 on them in a background thread, by the
startup rule (verify.check_agreement: cosine, batch independence, and fp32's decisions with ties
forgiven: the frame's top-1 generic label, and its nearest image, here among the photo set's fp32
views, because consecutive frames of one camera are near-duplicates of each other whose order is
all tie). On a failure it switches to an fp32 encoder and says why in ``recheck()``
(diagnostics) and the log.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .base import ImageEncoder
from .verify import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1, check_agreement

logger = logging.getLogger(__name__)

DEFAULT_RECHECK_FRAMES = 32
COLLECTING, CHECKING, PASSED, SWITCHED, FAILED = (
    "collecting frames", "checking", "passed", "switched to fp32", "check failed")


@dataclass(frozen=True)
class RecheckStatus:
    state: str
    frames: int            # frames kept so far (of ``wanted``)
    wanted: int
    reason: str = ""       # the verification result, or why fp32 could not be built

    def __str__(self) -> str:
        text = f"{self.state} ({self.frames}/{self.wanted} frames)"
        return f"{text}: {self.reason}" if self.reason else text


class RecheckingImageEncoder(ImageEncoder):
    """Wraps ``inner``; ``reference`` is a verify.TorchReference of the same model (its fp32
    torch encoder and label embeddings are reused); ``fp32()`` builds the encoder switched to."""

    def __init__(self, inner: ImageEncoder, reference, fp32: Callable[[], ImageEncoder],
                 frames: int = DEFAULT_RECHECK_FRAMES, max_batch: int = 8,
                 threshold: float = DEFAULT_MIN_COSINE, min_top1: float = DEFAULT_MIN_TOP1):
        if frames < 1:
            raise ValueError(f"recheck frames must be >= 1, got {frames}")
        self._inner = inner
        self._current = inner
        self._reference = reference
        self._fp32 = fp32
        self._wanted = frames
        self._max_batch = max_batch
        self._threshold = threshold
        self._min_top1 = min_top1
        self._kept: list = []
        self._state = COLLECTING
        self._reason = ""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.selection = getattr(inner, "selection", None)

    # delegate what describes the serving engine
    name = property(lambda self: self._current.name)  # type: ignore[assignment]
    precision = property(lambda self: self._current.precision)  # type: ignore[assignment]
    device = property(lambda self: self._current.device)  # type: ignore[assignment]
    threads = property(lambda self: self._current.threads)  # type: ignore[assignment]
    batches = property(lambda self: self._current.batches)  # type: ignore[assignment]

    def describe(self) -> str:
        return self._current.describe()

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        out = self._current.encode_images(batch)
        if self._state == COLLECTING:
            self._keep(batch)
        return out

    def _keep(self, batch) -> None:
        with self._lock:
            if self._state != COLLECTING:
                return
            need = self._wanted - len(self._kept)
            self._kept.extend(np.array(f, copy=True) for f in batch[:need])
            if len(self._kept) < self._wanted:
                return
            self._state = CHECKING
            self._thread = threading.Thread(target=self._check, name="frame recheck",
                                            daemon=True)
        self._thread.start()

    def _check(self) -> None:
        try:
            frames = np.stack(self._kept)
            ref_enc = self._reference.torch_encoder()
            ref = np.concatenate([ref_enc.encode_images(frames[i:i + self._max_batch])
                                  for i in range(0, len(frames), self._max_batch)])
            v = check_agreement(self._inner, frames, ref, self._reference.label_embeddings,
                                self._max_batch, self._threshold, self._min_top1,
                                gallery=self._reference.embeddings)
            if v.ok:
                self._finish(PASSED, f"on the robot's frames: {v}")
                return
            logger.warning("%s disagrees with fp32 on the robot's own frames (%s); switching to "
                           "fp32", self._inner.describe(), v)
            fp32 = self._fp32()
            self._current = fp32
            self._finish(SWITCHED, f"{self._inner.describe()} on the robot's frames: {v}; now "
                                   f"serving {fp32.describe()}")
        except Exception as exc:  # the serving engine stays; the reason is in diagnostics
            logger.warning("frame recheck of %s failed: %s: %s", self._inner.describe(),
                           type(exc).__name__, exc)
            self._finish(FAILED, f"{type(exc).__name__}: {exc}")

    def _finish(self, state, reason) -> None:
        with self._lock:
            self._state, self._reason = state, reason
            self._kept = self._kept if state == FAILED else []
        self._done.set()

    def recheck(self) -> RecheckStatus:
        with self._lock:
            kept = self._wanted if self._state != COLLECTING else len(self._kept)
            return RecheckStatus(self._state, kept, self._wanted, self._reason)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the check has finished (tests, benchmarks); returns the state."""
        self._done.wait(timeout)
        return self.recheck().state

    def close(self) -> None:
        # A check still running encodes with the inner engine: closing its native session under
        # it aborts the whole process, so let it finish first (bounded work: ``frames`` images
        # through each engine once).
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        # The replaced engine may still be running in a worker call; only close what serves.
        self._current.close()
        if self._current is not self._inner:
            self._inner.close()
