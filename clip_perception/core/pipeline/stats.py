"""Pipeline statistics: per-camera counters and per-stage latency windows, thread-safe.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence


STAGES = ("decode", "preprocess", "encode", "score", "publish", "age")
# what each stage's samples measure (for diagnostics keys)
STAGE_UNITS = {"decode": "per frame", "preprocess": "per frame", "encode": "per batch",
               "score": "per batch", "publish": "per batch",
               "age": "frame arrival to publish"}


@dataclass
class CameraCounters:
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before the worker got to it
    rejected: int = 0  # could not be decoded/preprocessed (bad frame)
    failed: int = 0  # lost to an encoder/scoring/publish error
    last_error: str = ""
    last_error_time: float = 0.0  # time.monotonic()
    last_received: float = 0.0


@dataclass
class StageWindow:
    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.maximum = max(self.maximum, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class StatsSnapshot:
    cameras: dict[str, CameraCounters]
    stages: dict[str, StageWindow]  # since the previous snapshot
    batches: int  # since the previous snapshot
    batch_frames: int  # since the previous snapshot
    window_seconds: float
    errors: int  # pipeline errors (encode/score/publish), total
    last_error: str
    last_error_time: float
    prepared_ahead: int = 0  # since the previous snapshot: frames encoded from a preparation
    preparations_wasted: int = 0  # made ahead, then superseded by a newer frame (since previous)


class PipelineStats:
    """Thread-safe counters (totals) and per-stage latency windows (reset at each snapshot)."""

    def __init__(self, cameras: Sequence[str], clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._cameras = {c: CameraCounters() for c in cameras}
        self._stages = {s: StageWindow() for s in STAGES}
        self._batches = 0
        self._batch_frames = 0
        self._window_start = clock()
        self._errors = 0
        self._last_error = ""
        self._last_error_time = 0.0
        self._prepared_ahead = 0
        self._preparations_wasted = 0

    def frame_received(self, camera: str, dropped: bool) -> None:
        with self._lock:
            c = self._cameras[camera]
            c.received += 1
            c.dropped += int(dropped)
            c.last_received = self._clock()

    def frame_rejected(self, camera: str, reason: str) -> None:
        with self._lock:
            c = self._cameras[camera]
            c.rejected += 1
            c.last_error, c.last_error_time = reason, self._clock()

    def frames_failed(self, cameras: Sequence[str], reason: str) -> None:
        with self._lock:
            for camera in cameras:
                self._cameras[camera].failed += 1
            self._errors += 1
            self._last_error, self._last_error_time = reason, self._clock()

    def frames_processed(self, cameras: Sequence[str]) -> None:
        with self._lock:
            for camera in cameras:
                self._cameras[camera].processed += 1
            self._batches += 1
            self._batch_frames += len(cameras)

    def frames_prepared_ahead(self, count: int) -> None:
        with self._lock:
            self._prepared_ahead += count

    def preparation_wasted(self, camera: str) -> None:
        with self._lock:
            self._preparations_wasted += 1

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._stages[name].add(seconds)

    def snapshot(self, reset_window: bool = True) -> StatsSnapshot:
        with self._lock:
            now = self._clock()
            snap = StatsSnapshot(
                cameras={k: CameraCounters(**vars(v)) for k, v in self._cameras.items()},
                stages={k: StageWindow(**vars(v)) for k, v in self._stages.items()},
                batches=self._batches, batch_frames=self._batch_frames,
                window_seconds=now - self._window_start, errors=self._errors,
                last_error=self._last_error, last_error_time=self._last_error_time,
                prepared_ahead=self._prepared_ahead,
                preparations_wasted=self._preparations_wasted)
            if reset_window:
                self._stages = {s: StageWindow() for s in STAGES}
                self._batches = self._batch_frames = 0
                self._prepared_ahead = self._preparations_wasted = 0
                self._window_start = now
            return snap
