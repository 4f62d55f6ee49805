"""Counters of the detection path per camera, by reason (what /diagnostics shows), thread-safe.

Pairing losses (arrays whose frame never came, came too late, ...) are counted by
``pairing.StampPairing`` itself; this counts what happens after pairing: arrays refused
whole, boxes skipped, boxes without a position, depth and camera_info problems, labelling
failures, and what was published.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .boxes import OVER_LIMIT


@dataclass
class DetectionCounters:
    arrays_labelled: int = 0  # arrays published on ~/detections
    arrays_refused: dict[str, int] = field(default_factory=dict)  # reason -> arrays
    boxes_in: int = 0  # boxes of paired arrays
    boxes_labelled: int = 0
    boxes_skipped: dict[str, int] = field(default_factory=dict)  # reason -> boxes
    boxes_located: int = 0  # with a 3D position
    boxes_unlocated: dict[str, int] = field(default_factory=dict)  # reason -> boxes
    inputs_refused: dict[str, int] = field(default_factory=dict)  # depth/camera_info problems
    label_seconds: float = 0.0  # crops + scoring + publishing of labelled arrays, total
    last_problem: str = ""
    last_problem_time: float = 0.0

    def copy(self) -> "DetectionCounters":
        return DetectionCounters(self.arrays_labelled, dict(self.arrays_refused), self.boxes_in,
                                 self.boxes_labelled, dict(self.boxes_skipped),
                                 self.boxes_located, dict(self.boxes_unlocated),
                                 dict(self.inputs_refused), self.label_seconds,
                                 self.last_problem, self.last_problem_time)


def _add(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


class DetectionStats:
    def __init__(self, cameras: Sequence[str], clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._cams = {c: DetectionCounters() for c in cameras}

    def _problem(self, c: DetectionCounters, detail: str) -> None:
        c.last_problem, c.last_problem_time = detail, self._clock()

    def array_refused(self, camera: str, reason: str, detail: str = "",
                      boxes: int = 0) -> None:
        with self._lock:
            c = self._cams[camera]
            _add(c.arrays_refused, reason)
            c.boxes_in += boxes
            self._problem(c, detail or reason)

    def input_refused(self, camera: str, reason: str, detail: str = "") -> None:
        """A depth image or camera_info that could not be used."""
        with self._lock:
            c = self._cams[camera]
            _add(c.inputs_refused, reason)
            self._problem(c, detail or reason)

    def array_labelled(self, camera: str, boxes_in: int, labelled: int,
                       skipped: Sequence[str], located: int, unlocated: Sequence[str],
                       seconds: float) -> None:
        """``skipped``: a reason per skipped box; ``unlocated``: per box without position."""
        with self._lock:
            c = self._cams[camera]
            c.arrays_labelled += 1
            c.boxes_in += boxes_in
            c.boxes_labelled += labelled
            c.boxes_located += located
            c.label_seconds += seconds
            for reason in skipped:
                _add(c.boxes_skipped, reason)
            bad = sorted(set(skipped) - {OVER_LIMIT})  # the limit is a setting, not a problem
            if bad:
                self._problem(c, f"boxes skipped: {', '.join(bad)}")
            for reason in unlocated:
                _add(c.boxes_unlocated, reason)

    def note_problem(self, camera: str, detail: str) -> None:
        with self._lock:
            self._problem(self._cams[camera], detail)

    def snapshot(self) -> dict[str, DetectionCounters]:
        with self._lock:
            return {k: v.copy() for k, v in self._cams.items()}


def reason_key(problem: str) -> str:
    """The counted key of a problem message "<reason>: <detail>" (or the message itself)."""
    return problem.split(":", 1)[0].strip()
