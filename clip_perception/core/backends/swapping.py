"""Serve with one encoder while a better one is built in the background; swap once verified.

A TensorRT engine build takes minutes on a Jetson. ``SwappingImageEncoder`` answers
``encode_images`` with the fallback encoder until ``build()`` (which must build, load and verify,
raising when it cannot) returns; then new calls go to the built encoder and the fallback is
closed once no call is still using it. If the build fails, the fallback keeps serving and the
state says why.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .base import BackendUnavailable, ImageEncoder

logger = logging.getLogger(__name__)

BUILDING = "building"
READY = "ready"
REFUSED = "refused"


@dataclass(frozen=True)
class SwapStatus:
    state: str                # building | ready | refused
    serving: str              # describe() of the encoder answering calls now
    target: str               # what is being built, e.g. "tensorrt (fp16, cuda)"
    reason: str = ""          # why refused (empty otherwise)
    seconds: float = 0.0      # build time so far / total


class _Serving:
    """An attribute read from the encoder serving now (``self._current``)."""

    def __set_name__(self, owner, name):
        self._name = name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj._current, self._name)


class SwappingImageEncoder(ImageEncoder):
    """Thread-safe ImageEncoder wrapper; see the module docstring."""

    def __init__(self, fallback: ImageEncoder, build: Callable[[], ImageEncoder], target: str,
                 start: bool = True):
        self._fallback = fallback
        self._current = fallback
        self._build = build
        self.target = target
        self._cond = threading.Condition()
        self._in_use: dict[int, int] = {}   # id(encoder) -> calls in flight
        self._retired: Optional[ImageEncoder] = None
        self._state = BUILDING
        self._reason = ""
        self._started = time.monotonic()
        self._finished: Optional[float] = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"build {target}", daemon=True)
        if start:
            self._thread.start()

    # ImageEncoder -----------------------------------------------------------------------
    # What describes the encoder is whatever the serving one says, read at each access.
    name = _Serving()
    precision = _Serving()
    device = _Serving()
    threads = _Serving()
    batches = _Serving()

    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        with self._cond:
            if self._closed:
                raise RuntimeError("encoder is closed")
            encoder = self._current
            self._in_use[id(encoder)] = self._in_use.get(id(encoder), 0) + 1
        try:
            return encoder.encode_images(batch)
        finally:
            to_close = None
            with self._cond:
                self._in_use[id(encoder)] -= 1
                if encoder is self._retired and self._in_use[id(encoder)] == 0:
                    to_close, self._retired = encoder, None
            if to_close is not None:
                _close_quietly(to_close)

    def describe(self) -> str:
        s = self.status()
        if s.state == READY:
            return s.serving
        if s.state == BUILDING:
            return f"{s.serving} [building {s.target}]"
        return f"{s.serving} [{s.target} refused: {s.reason}]"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            encoders = {id(e): e for e in (self._current, self._fallback, self._retired) if e}
        for e in encoders.values():
            _close_quietly(e)

    # state ------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    def status(self) -> SwapStatus:
        with self._cond:
            end = self._finished if self._finished is not None else time.monotonic()
            return SwapStatus(self._state, self._current.describe(), self.target, self._reason,
                              round(end - self._started, 2))

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the build ends (or ``timeout`` s); returns the state."""
        self._thread.join(timeout)
        return self._state

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            built = self._build()
        except Exception as exc:  # any failure leaves the fallback serving, with the reason
            reason = f"{type(exc).__name__}: {exc}" if not _is_unavailable(exc) else str(exc)
            with self._cond:
                self._state, self._reason = REFUSED, reason
                self._finished = time.monotonic()
            logger.warning("%s not used, %s keeps serving: %s", self.target,
                           self._fallback.describe(), reason)
            return
        to_close = None
        with self._cond:
            if self._closed:
                to_close = built
            else:
                old, self._current = self._current, built
                if self._in_use.get(id(old), 0) == 0:
                    to_close = old
                else:
                    self._retired = old
                self._state = READY
            self._finished = time.monotonic()
        if to_close is not None:
            _close_quietly(to_close)
        if self._state == READY:
            logger.info("swapped to %s after %.1f s (was %s)", built.describe(),
                        self._finished - self._started, self._fallback.describe())


def _is_unavailable(exc: Exception) -> bool:
    return isinstance(exc, BackendUnavailable)


def _close_quietly(encoder: ImageEncoder) -> None:
    try:
        encoder.close()
    except Exception:
        logger.debug("closing %s failed", encoder, exc_info=True)
