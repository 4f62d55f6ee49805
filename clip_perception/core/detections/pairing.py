"""Boxes (and depth) matched to the camera frame of the same stamp, per camera, bounded.

A detector publishes its array some time after the frame it ran on; over DDS the array may even
arrive before the frame. ``StampPairing`` keeps, per camera, the recent frames (and depth images)
by exact ``header.stamp``, and arrays waiting for their frame, all bounded in time
(``timeout``) and count (``max_frames``). Nothing is waited for forever: an array whose frame
does not come within ``timeout`` is given up with the reason, and every other way of losing one
is counted with its own reason (``PairingCounts``).

Thread-safe: the intake thread puts frames, subscription callbacks put arrays and depth, the
worker takes ready jobs.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

# Reasons arrays are not labelled (the keys /diagnostics counts by)
NEVER_CAME = "no frame with this stamp"
FRAME_EXPIRED = "array too late: its frame left the buffer"
BUSY = "node busy: older array dropped"
TOO_MANY_WAITING = "too many arrays waiting for frames"
DUPLICATE = "another array with the same stamp"
# Not array losses, counted beside them:
LATE_FRAME = "frame came after its array was given up"
NO_DEPTH = "no depth image with this stamp"

DEFAULT_TIMEOUT = 1.0  # s
DEFAULT_MAX_FRAMES = 60  # per camera: 2 s at 30 Hz, bounded even if timeout is raised
MAX_READY = DEFAULT_MAX_FRAMES  # paired arrays waiting for the worker, per camera
_REMEMBERED = 512  # stamps remembered per camera to tell "left the buffer" / "came late"


@dataclass
class PairedJob:
    """An array with its frame (and depth when configured and it came): ready to label."""
    camera: str
    stamp_ns: int
    frame: Any
    boxes: Any
    depth: Any = None
    waited: float = 0.0  # s between the first of the three arriving and the job being ready
    depth_problem: str = ""  # NO_DEPTH (with timeout) when depth was wanted but did not come


@dataclass
class PairingCounts:
    arrays: int = 0
    paired: int = 0
    lost: dict[str, int] = field(default_factory=dict)  # reason -> arrays
    notes: dict[str, int] = field(default_factory=dict)  # LATE_FRAME, NO_DEPTH -> count
    last_problem: str = ""
    last_problem_time: float = 0.0


class _Camera:
    def __init__(self):
        self.frames: "OrderedDict[int, tuple[float, Any]]" = OrderedDict()
        self.depths: "OrderedDict[int, tuple[float, Any]]" = OrderedDict()
        self.waiting: "OrderedDict[int, tuple[float, Any]]" = OrderedDict()
        self.ready: "deque[PairedJob]" = deque()
        self.evicted: "deque[int]" = deque(maxlen=_REMEMBERED)
        self.given_up: "deque[int]" = deque(maxlen=_REMEMBERED)
        self.counts = PairingCounts()


class StampPairing:
    """``cameras``: those with a detection topic; ``depth_cameras``: those that also wait for
    a depth image of the same stamp (up to ``timeout``, then labelled without it)."""

    def __init__(self, cameras: Sequence[str], depth_cameras: Sequence[str] = (),
                 timeout: float = DEFAULT_TIMEOUT, max_frames: int = DEFAULT_MAX_FRAMES,
                 max_ready: int = MAX_READY, clock: Callable[[], float] = time.monotonic,
                 on_ready: Callable[[], None] = lambda: None):
        if timeout <= 0 or max_frames < 1 or max_ready < 1:
            raise ValueError(f"timeout {timeout}, max_frames {max_frames}, max_ready "
                             f"{max_ready}: expected > 0, >= 1, >= 1")
        self._cams = {c: _Camera() for c in cameras}
        self._depth = set(depth_cameras)
        unknown = self._depth - set(self._cams)
        if unknown:
            raise ValueError(f"depth cameras {sorted(unknown)} have no detection topic")
        self.timeout, self.max_frames, self.max_ready = timeout, max_frames, max_ready
        self._clock, self._on_ready = clock, on_ready
        self._lock = threading.Lock()

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._cams)

    def wants(self, camera: str) -> bool:
        return camera in self._cams

    # ---- inputs ------------------------------------------------------------------------------
    def put_frame(self, camera: str, stamp_ns: int, frame: Any) -> None:
        self._put(camera, stamp_ns, frame, "frames")

    def put_depth(self, camera: str, stamp_ns: int, depth: Any) -> None:
        self._put(camera, stamp_ns, depth, "depths")

    def put_boxes(self, camera: str, stamp_ns: int, boxes: Any) -> None:
        now = self._clock()
        with self._lock:
            cam = self._cams[camera]
            ready = self._expire(camera, cam, now)
            cam.counts.arrays += 1
            if stamp_ns in cam.waiting or any(j.stamp_ns == stamp_ns for j in cam.ready):
                self._lose(cam, DUPLICATE, now, f"stamp {stamp_ns}")
            elif stamp_ns not in cam.frames and stamp_ns in cam.evicted:
                self._lose(cam, FRAME_EXPIRED, now, f"stamp {stamp_ns}, kept "
                           f"{self.timeout:g} s / {self.max_frames} frames")
            else:
                if len(cam.waiting) >= self.max_frames:
                    cam.waiting.popitem(last=False)
                    self._lose(cam, TOO_MANY_WAITING, now, f"more than {self.max_frames}")
                cam.waiting[stamp_ns] = (now, boxes)
                ready |= self._try_pair(camera, cam, stamp_ns, now)
        if ready:
            self._on_ready()

    def _put(self, camera: str, stamp_ns: int, item: Any, kind: str) -> None:
        now = self._clock()
        with self._lock:
            cam = self._cams[camera]
            ready = self._expire(camera, cam, now)
            store = getattr(cam, kind)
            store[stamp_ns] = (now, item)
            store.move_to_end(stamp_ns)
            while len(store) > self.max_frames:
                if kind == "frames":
                    ready |= self._drop_oldest_frame(camera, cam, now)
                else:
                    store.popitem(last=False)
            if kind == "frames" and stamp_ns in cam.given_up:
                self._note(cam, LATE_FRAME, now, f"stamp {stamp_ns}")
            if stamp_ns in cam.waiting:
                ready |= self._try_pair(camera, cam, stamp_ns, now)
        if ready:
            self._on_ready()

    # ---- outputs -----------------------------------------------------------------------------
    def take(self, max_jobs: int) -> list[PairedJob]:
        """Up to ``max_jobs`` ready jobs, cameras in turn, oldest first within a camera."""
        now = self._clock()
        out: list[PairedJob] = []
        with self._lock:
            for camera, cam in self._cams.items():
                self._expire(camera, cam, now)  # may make jobs ready: taken just below
            while len(out) < max_jobs and any(c.ready for c in self._cams.values()):
                for cam in self._cams.values():
                    if cam.ready and len(out) < max_jobs:
                        out.append(cam.ready.popleft())
        return out

    def has_ready(self) -> bool:
        with self._lock:
            return any(c.ready for c in self._cams.values())

    def next_deadline(self) -> Optional[float]:
        """When the oldest waiting array times out (clock time), None if nothing waits."""
        with self._lock:
            starts = [next(iter(c.waiting.values()))[0] for c in self._cams.values() if c.waiting]
        return min(starts) + self.timeout if starts else None

    def expire(self) -> None:
        """Give up arrays waiting past ``timeout`` (also done by every put and take)."""
        now = self._clock()
        with self._lock:
            ready = False
            for camera, cam in self._cams.items():
                ready |= self._expire(camera, cam, now)
        if ready:
            self._on_ready()

    def counts(self) -> dict[str, PairingCounts]:
        with self._lock:
            return {c: PairingCounts(k.counts.arrays, k.counts.paired, dict(k.counts.lost),
                                     dict(k.counts.notes), k.counts.last_problem,
                                     k.counts.last_problem_time)
                    for c, k in self._cams.items()}

    # ---- under the lock ----------------------------------------------------------------------
    def _try_pair(self, camera: str, cam: _Camera, stamp: int, now: float,
                  give_up_depth: bool = False) -> bool:
        if stamp not in cam.frames:
            return False
        depth, problem = None, ""
        if camera in self._depth:
            if stamp in cam.depths:
                depth = cam.depths[stamp][1]
            elif not give_up_depth:
                return False
            else:
                problem = f"{NO_DEPTH} within {self.timeout:g} s"
                self._note(cam, NO_DEPTH, now, f"stamp {stamp}")
        arrived, boxes = cam.waiting.pop(stamp)
        first = min(arrived, cam.frames[stamp][0])
        job = PairedJob(camera, stamp, cam.frames[stamp][1], boxes, depth, now - first, problem)
        if len(cam.ready) >= self.max_ready:
            cam.ready.popleft()
            self._lose(cam, BUSY, now, f"{self.max_ready} labelled arrays were waiting")
        cam.ready.append(job)
        cam.counts.paired += 1
        return True

    def _expire(self, camera: str, cam: _Camera, now: float) -> bool:
        ready = False
        while cam.waiting:  # arrays past timeout: without depth if their frame is here
            stamp, (arrived, _) = next(iter(cam.waiting.items()))
            if now - arrived <= self.timeout:
                break
            if self._try_pair(camera, cam, stamp, now, give_up_depth=True):
                ready = True
                continue
            cam.waiting.pop(stamp)
            cam.given_up.append(stamp)
            self._lose(cam, NEVER_CAME, now, f"stamp {stamp} within {self.timeout:g} s")
        while cam.frames and now - next(iter(cam.frames.values()))[0] > self.timeout:
            ready |= self._drop_oldest_frame(camera, cam, now)
        while cam.depths and now - next(iter(cam.depths.values()))[0] > self.timeout:
            cam.depths.popitem(last=False)
        return ready

    def _drop_oldest_frame(self, camera: str, cam: _Camera, now: float) -> bool:
        """An array still waiting for this frame's depth is labelled without depth first."""
        stamp = next(iter(cam.frames))
        ready = stamp in cam.waiting and self._try_pair(camera, cam, stamp, now,
                                                        give_up_depth=True)
        cam.frames.pop(stamp)
        cam.evicted.append(stamp)
        return ready

    @staticmethod
    def _lose(cam: _Camera, reason: str, now: float, detail: str) -> None:
        cam.counts.lost[reason] = cam.counts.lost.get(reason, 0) + 1
        cam.counts.last_problem, cam.counts.last_problem_time = f"{reason} ({detail})", now

    @staticmethod
    def _note(cam: _Camera, reason: str, now: float, detail: str) -> None:
        cam.counts.notes[reason] = cam.counts.notes.get(reason, 0) + 1
        cam.counts.last_problem, cam.counts.last_problem_time = f"{reason} ({detail})", now
