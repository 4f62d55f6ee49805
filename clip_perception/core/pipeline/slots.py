"""Newest-frame slots: one per camera, a newer frame replaces the waiting one.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from .stats import PipelineStats


@dataclass
class PendingFrame:
    camera: str
    payload: Any  # the message as received; decoded in the worker, only if it gets processed
    received: float  # time.monotonic() at arrival


class LatestFrameSlots:
    """One slot per camera holding only its newest frame; a newer frame replaces (drops) it.

    ``put`` is what subscription callbacks call: constant time, never waits for inference.
    ``take`` hands the worker up to ``max_batch`` waiting frames, the cameras served longest
    ago first (then the oldest arrival), so with more cameras than ``max_batch`` every camera
    still gets its turn: ordering by arrival alone would hand synchronised cameras' newest
    frames to the first publisher of each tick every time and starve the others.
    """

    def __init__(self, cameras: Sequence[str], stats: "PipelineStats"):
        self._slots: "OrderedDict[str, Optional[PendingFrame]]" = OrderedDict(
            (c, None) for c in cameras)
        self._stats = stats
        self._cond = threading.Condition()
        self._closed = False
        self._woken = False  # wake(): a waiting take returns now, even with no frame
        self._changes = 0  # bumped by put/take/close/poke; the preparer waits on it
        self._turn = 0  # take() count; _served[camera] = the take that last served it
        self._served = {c: -1 for c in cameras}

    def put(self, camera: str, payload: Any, received: Optional[float] = None) -> bool:
        """Store ``payload`` as ``camera``'s newest frame; True if an unprocessed one was dropped."""
        frame = PendingFrame(camera, payload, time.monotonic() if received is None else received)
        with self._cond:
            if camera not in self._slots:
                raise KeyError(f"unknown camera {camera!r}; known: {list(self._slots)}")
            dropped = self._slots[camera] is not None
            self._slots[camera] = frame
            self._changes += 1
            self._cond.notify_all()  # the worker and the preparer both wait on this
        self._stats.frame_received(camera, dropped)
        return dropped

    def take(self, max_batch: int, timeout: Optional[float] = None) -> list[PendingFrame]:
        """Up to ``max_batch`` frames (oldest arrival first); [] on timeout or after close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._woken or
                                       any(self._slots.values()), timeout):
                return []
            self._woken = False
            if self._closed:
                return []
            waiting = self._waiting(max_batch)
            self._turn += 1
            for f in waiting:
                self._slots[f.camera] = None
                self._served[f.camera] = self._turn
            self._changes += 1
            self._cond.notify_all()
            return waiting

    def peek(self, max_batch: int) -> list[PendingFrame]:
        """The frames ``take`` would return now, left in place."""
        with self._cond:
            return self._waiting(max_batch)

    def _waiting(self, max_batch: int) -> list[PendingFrame]:
        return sorted((f for f in self._slots.values() if f is not None),
                      key=lambda f: (self._served[f.camera], f.received))[:max_batch]

    @property
    def changes(self) -> int:
        with self._cond:
            return self._changes

    def wait_for_change(self, seen: int, timeout: Optional[float]) -> int:
        """Wait until the change counter differs from ``seen`` (or timeout); returns it."""
        with self._cond:
            self._cond.wait_for(lambda: self._changes != seen or self._closed, timeout)
            return self._changes

    def wake(self) -> None:
        """Make a waiting (or the next) ``take`` return now, with whatever frames wait (maybe
        none): the worker has other work (detection crops) ready."""
        with self._cond:
            self._woken = True
            self._changes += 1
            self._cond.notify_all()

    def poke(self) -> None:
        """Wake ``wait_for_change`` callers (the worker's state changed)."""
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._changes += 1
            self._cond.notify_all()
