"""A short, time-sorted pose history answering "where was the robot at this image's stamp?".

Filled from a pose topic (Odometry, PoseStamped, PoseWithCovarianceStamped) or from a bag's
/tf edges. A stamp is answered only when it is bracketed by two samples no more than
``max_gap`` apart (linear position + slerp orientation between them); anything else raises
PoseUnavailable with the reason, because a guessed pose would put a keyframe in the wrong place.
"""
from __future__ import annotations

import bisect
import threading
from typing import Optional

from .errors import PoseUnavailable
from .geometry import Pose, interpolate

NS = 1_000_000_000


class PoseNotYetKnown(PoseUnavailable):
    """The stamp is newer than the newest sample: the pose may still arrive (retry later)."""


class PoseBuffer:
    """Thread-safe: one thread adds samples (a topic callback), another looks them up."""

    def __init__(self, horizon: float = 10.0, max_samples: int = 100_000):
        if horizon <= 0:
            raise ValueError(f"pose buffer horizon must be > 0 s, got {horizon}")
        self.horizon_ns = int(horizon * NS)
        self.max_samples = max_samples
        self._stamps: list[int] = []
        self._poses: list[Pose] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def add(self, stamp_ns: int, pose: Pose) -> None:
        """Insert in stamp order (late samples are fine); drop samples older than the horizon."""
        with self._lock:
            i = bisect.bisect_right(self._stamps, stamp_ns)
            if i > 0 and self._stamps[i - 1] == stamp_ns:  # same stamp again: the newer wins
                self._poses[i - 1] = pose
                return
            self._stamps.insert(i, stamp_ns)
            self._poses.insert(i, pose)
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.horizon_ns)
            cut = max(cut, len(self._stamps) - self.max_samples)
            if cut > 0:
                del self._stamps[:cut], self._poses[:cut]

    def span(self) -> Optional[tuple[int, int]]:
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def lookup(self, stamp_ns: int, max_gap: float) -> Pose:
        """The pose at ``stamp_ns``; raises PoseUnavailable (PoseNotYetKnown if too new)."""
        with self._lock:
            if not self._stamps:
                raise PoseNotYetKnown("no pose received yet")
            first, last = self._stamps[0], self._stamps[-1]
            if stamp_ns > last:
                raise PoseNotYetKnown(f"stamp {stamp_ns / NS:.3f} s is newer than the newest pose "
                                      f"({last / NS:.3f} s)")
            if stamp_ns < first:
                raise PoseUnavailable(f"stamp {stamp_ns / NS:.3f} s is older than the oldest "
                                      f"buffered pose ({first / NS:.3f} s)")
            i = bisect.bisect_left(self._stamps, stamp_ns)
            if self._stamps[i] == stamp_ns:
                return self._poses[i]
            t0, t1 = self._stamps[i - 1], self._stamps[i]
            p0, p1 = self._poses[i - 1], self._poses[i]
        gap = (t1 - t0) / NS
        if gap > max_gap:
            raise PoseUnavailable(f"stamp {stamp_ns / NS:.3f} s falls in a {gap:.3f} s gap "
                                  f"between poses; max_pose_gap is {max_gap:.3f} s")
        return interpolate(p0, p1, (stamp_ns - t0) / (t1 - t0))


class TopicPoseSource:
    """Poses of the robot from a pose topic, expressed in ``fixed_frame``.

    The topic gives the robot's (base) pose, not the camera's: a keyframe's pose is where the
    robot stood, which is what a navigation goal needs. Samples in another frame are refused
    (the caller counts them) instead of being mixed with the fixed frame's.
    """

    def __init__(self, fixed_frame: str, max_gap: float, horizon: float = 10.0):
        self.fixed_frame = fixed_frame
        self.max_gap = max_gap
        self.buffer = PoseBuffer(horizon)

    def add(self, stamp_ns: int, pose: Pose) -> None:
        if pose.frame_id != self.fixed_frame:
            raise PoseUnavailable(f"pose sample in frame '{pose.frame_id}', expected the fixed "
                                  f"frame '{self.fixed_frame}' (set memory.fixed_frame)")
        self.buffer.add(stamp_ns, pose)

    def pose_at(self, frame_id: str, stamp_ns: int) -> Pose:
        """``frame_id`` (the camera's) is not needed: the topic already is the robot's pose."""
        return self.buffer.lookup(stamp_ns, self.max_gap)

    def describe(self) -> str:
        return f"pose topic in '{self.fixed_frame}', max gap {self.max_gap:.3f} s"
