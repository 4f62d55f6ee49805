"""When batches start: the rate cap and the just-in-time planner for preparing ahead.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class RateLimiter:
    """Spaces batch starts at least 1/max_rate_hz apart; ``max_rate_hz`` may change at any time."""

    def __init__(self, max_rate_hz: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.max_rate_hz = max_rate_hz
        self._clock = clock
        self._last_start: Optional[float] = None

    def delay(self) -> float:
        """Seconds to wait before the next batch may start (0 if unlimited or due)."""
        rate = self.max_rate_hz
        if rate <= 0 or self._last_start is None:
            return 0.0
        return max(0.0, self._last_start + 1.0 / rate - self._clock())

    def started(self) -> None:
        self._last_start = self._clock()

    def next_start(self) -> Optional[float]:
        """Earliest clock time the next batch may start; None if unlimited."""
        rate = self.max_rate_hz
        if rate <= 0 or self._last_start is None:
            return None
        return self._last_start + 1.0 / rate


class JustInTimePlanner:
    """When to start preparing the next batch so that it is ready just as the encoder frees up.

    ``prepare_at(n) = expected_free - n * prepare_ema - margin``: ``expected_free`` is the start
    of the running batch plus the EMA of how long batches of that size kept the encoder busy
    (encode + score + publish), or the next rate-limit turn if that is later. Preparing earlier
    than needed only lets a newer frame arrive meanwhile and supersede the prepared one (wasted
    CPU on a machine the encoder already saturates); later makes the encoder wait. The margin
    (``margin + margin_fraction`` of the predicted preparation time) absorbs jitter. None means
    no prediction (encoder idle, or nothing measured yet): the encoder thread then prepares the
    frames itself when it takes them, as without a planner. Thread-safe; ``clock`` is
    time.monotonic unless a test passes its own.
    """

    def __init__(self, alpha: float = 0.3, margin: float = 0.002, margin_fraction: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.margin, self.margin_fraction = alpha, margin, margin_fraction
        self._clock = clock
        self._lock = threading.Lock()
        self._busy: dict[int, float] = {}  # batch size -> EMA of busy seconds
        self._prepare: Optional[float] = None  # EMA of decode + preprocess seconds per frame
        self._running: Optional[tuple[float, int]] = None  # (start, batch size)
        self._last_size: Optional[int] = None  # size of the last finished batch
        self._finished = 0  # batches measured
        self._not_before: Optional[float] = None  # next rate-limit turn

    def now(self) -> float:
        return self._clock()

    def _ema(self, old: Optional[float], new: float) -> float:
        return new if old is None else old + self.alpha * (new - old)

    def frame_prepared(self, seconds: float) -> None:
        with self._lock:
            self._prepare = self._ema(self._prepare, seconds)

    def batch_started(self, size: int, not_before: Optional[float] = None) -> None:
        with self._lock:
            self._running = (self._clock(), size)
            self._not_before = not_before

    def batch_finished(self) -> None:
        with self._lock:
            if self._running is not None:
                start, size = self._running
                self._busy[size] = self._ema(self._busy.get(size), self._clock() - start)
                if size > 0:  # a batch of detection crops only has no frames to share
                    self._last_size = size
                    self._finished += 1
            self._running = None

    def preparation_share(self, min_batches: int = 10) -> Optional[float]:
        """Decode + preprocess of one frame as a share of the encoder's busy time per frame at
        the last batch size; None until ``min_batches`` batches are measured (the first
        encodes include warm-up)."""
        with self._lock:
            if self._prepare is None or self._last_size is None or self._finished < min_batches:
                return None
            size = self._last_size
            busy = self._busy[size] / size
            return self._prepare / busy if busy > 0 else None

    def _busy_estimate(self, size: int) -> Optional[float]:
        if size in self._busy:
            return self._busy[size]
        sized = [k for k in self._busy if k > 0]  # 0: a batch of detection crops only
        if size == 0 or not sized:
            return None
        nearest = min(sized, key=lambda k: abs(k - size))  # CPU encoders scale ~linearly
        return self._busy[nearest] * size / nearest

    def expected_free(self) -> Optional[float]:
        """When the encoder is predicted to want its next batch; None if unknown/idle."""
        with self._lock:
            turn = self._not_before
            if self._running is None:
                # Idle but waiting for its rate turn: that turn is when it wants frames.
                return turn if turn is not None and turn > self._clock() else None
            start, size = self._running
            busy = self._busy_estimate(size)
            if busy is None:
                return None
            return max(start + busy, turn) if turn is not None else start + busy

    def prepare_at(self, frames: int) -> Optional[float]:
        """When to start preparing ``frames`` frames; None: do not prepare ahead now."""
        free = self.expected_free()
        with self._lock:
            prepare = self._prepare
        if free is None or prepare is None:
            return None
        lead = frames * prepare
        return free - lead - self.margin - self.margin_fraction * lead
