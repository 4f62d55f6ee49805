"""Poses as plain numbers: quaternion algebra, interpolation (linear + slerp), composition.

Quaternions are (x, y, z, w) like geometry_msgs; every function takes and returns numpy arrays
or the frozen ``Pose`` dataclass, never ROS messages (those conversions live in ros/).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IDENTITY_Q = (0.0, 0.0, 0.0, 1.0)


def normalize_quaternion(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} has no direction (norm {n}); expected a "
                         f"unit quaternion (x, y, z, w)")
    return q / n


def quaternion_multiply(a, b) -> np.ndarray:
    """Hamilton product a*b (apply b, then a), (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quaternion_conjugate(q) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]], dtype=np.float64)


def rotate(q, v) -> np.ndarray:
    """Vector ``v`` rotated by unit quaternion ``q``."""
    p = np.array([v[0], v[1], v[2], 0.0])
    return quaternion_multiply(quaternion_multiply(q, p), quaternion_conjugate(q))[:3]


def slerp(q0, q1, t: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions, shortest arc, t in [0, 1]."""
    q0 = normalize_quaternion(q0)
    q1 = normalize_quaternion(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation: take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: lerp is exact enough and avoids dividing by ~0
        return normalize_quaternion(q0 + t * (q1 - q0))
    theta = math.acos(min(1.0, dot))
    s = math.sin(theta)
    return (math.sin((1.0 - t) * theta) / s) * q0 + (math.sin(t * theta) / s) * q1


def rotation_angle(q0, q1) -> float:
    """Angle (radians, 0..pi) of the rotation taking q0 to q1."""
    dot = abs(float(np.dot(normalize_quaternion(q0), normalize_quaternion(q1))))
    return 2.0 * math.acos(min(1.0, dot))


def yaw(q) -> float:
    """Heading about +z (radians, REP-103), what a 2-D navigation goal needs."""
    x, y, z, w = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@dataclass(frozen=True)
class Pose:
    """Position (m) and orientation of a frame in ``frame_id``."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float] = IDENTITY_Q  # x, y, z, w
    frame_id: str = ""

    def __post_init__(self):
        p = tuple(float(v) for v in self.position)
        if len(p) != 3 or not all(math.isfinite(v) for v in p):
            raise ValueError(f"position {self.position} is not three finite numbers")
        q = tuple(float(v) for v in normalize_quaternion(self.orientation))
        if len(q) != 4:
            raise ValueError(f"orientation {self.orientation} is not (x, y, z, w)")
        object.__setattr__(self, "position", p)
        object.__setattr__(self, "orientation", q)

    @property
    def yaw(self) -> float:
        return yaw(self.orientation)

    def distance_to(self, other: "Pose") -> float:
        return float(np.linalg.norm(np.subtract(self.position, other.position)))

    def angle_to(self, other: "Pose") -> float:
        return rotation_angle(self.orientation, other.orientation)

    def compose(self, child: "Pose") -> "Pose":
        """This transform applied to ``child`` (child expressed in this pose's frame)."""
        p = np.add(self.position, rotate(self.orientation, child.position))
        q = quaternion_multiply(self.orientation, child.orientation)
        return Pose(tuple(p), tuple(q), self.frame_id)

    def inverse(self, frame_id: str = "") -> "Pose":
        q = quaternion_conjugate(self.orientation)
        p = -rotate(q, self.position)
        return Pose(tuple(p), tuple(q), frame_id)


def interpolate(a: Pose, b: Pose, t: float) -> Pose:
    """Linear position, slerp orientation; t=0 gives a, t=1 gives b."""
    p = np.add(a.position, t * np.subtract(b.position, a.position))
    return Pose(tuple(p), tuple(slerp(a.orientation, b.orientation, t)), a.frame_id)
