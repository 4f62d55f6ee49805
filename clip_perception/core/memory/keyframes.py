"""Which frames become keyframes: after the robot moved or turned enough, or on a novel view.

One decision per camera: a frame is kept when there is no keyframe of that camera yet, when
the pose moved ``min_distance`` metres or turned ``min_angle`` radians from that camera's last
keyframe, or when its embedding's cosine to that keyframe is below ``novelty`` (something new
came into view while standing still). Everything else would only repeat the last keyframe.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import PlaceMemoryError
from .geometry import Pose

FIRST, MOVED, TURNED, NOVEL = "first", "moved", "turned", "novel"


@dataclass(frozen=True)
class KeyframePolicy:
    min_distance: float = 0.5  # m
    min_angle: float = 0.35  # rad (~20 deg)
    novelty: float = 0.9  # cosine; 0 disables the novelty rule

    def __post_init__(self):
        for name, value, low, high in (("min_distance", self.min_distance, 0.0, math.inf),
                                       ("min_angle", self.min_angle, 0.0, math.pi),
                                       ("novelty", self.novelty, 0.0, 1.0)):
            if not low <= value <= high:  # also refuses NaN
                raise PlaceMemoryError(f"{name} must be in [{low}, {high}], got {value}")

    def reason(self, last: Optional[tuple[Pose, np.ndarray]], pose: Pose,
               embedding: np.ndarray) -> Optional[str]:
        """Why this frame is a keyframe (FIRST/MOVED/TURNED/NOVEL), or None to skip it."""
        if last is None:
            return FIRST
        last_pose, last_embedding = last
        if pose.distance_to(last_pose) >= self.min_distance:
            return MOVED
        if pose.angle_to(last_pose) >= self.min_angle:
            return TURNED
        if self.novelty > 0 and float(np.dot(embedding, last_embedding)) < self.novelty:
            return NOVEL
        return None


class KeyframeSelector:
    """The policy plus the last keyframe of each camera (thread-safe)."""

    def __init__(self, policy: KeyframePolicy):
        self.policy = policy
        self._last: dict[str, tuple[Pose, np.ndarray]] = {}
        self._lock = threading.Lock()

    def consider(self, camera: str, pose: Pose, embedding: np.ndarray) -> Optional[str]:
        """Decide, and remember the frame as that camera's last keyframe when it is one."""
        with self._lock:
            why = self.policy.reason(self._last.get(camera), pose, embedding)
            if why is not None:
                self._last[camera] = (pose, np.array(embedding, dtype=np.float32))
            return why

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
