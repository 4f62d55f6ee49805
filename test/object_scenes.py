"""Two objects at known places in map, seen by a camera on a robot driving past them along +x,
for object-memory tests. The camera's optical frame (z forward, x right, y down) looks along the
robot's +x; the pose topic gives the camera's pose. Boxes project the objects through a
pinhole camera; depth is the objects' true depth."""
from __future__ import annotations

import math

import numpy as np

T0 = 1_700_000_000 * 10 ** 9
OBJECTS = {"A": (5.0, 0.6, 0.1), "B": (6.0, -0.7, -0.1)}  # map, metres
FX = FY = 120.0
W, H = 160, 120
CX, CY = W / 2, H / 2
SIZE = 0.8  # m, each object's width and height (a square facing the camera)
# optical frame -> robot (x forward, y left, z up): optical z = robot x, x = -y, y = -z
OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)
CAMERA_HZ, POSE_HZ = 5.0, 20.0
DRIVE_S = 3.0


def frame_times() -> list[float]:
    return [i / CAMERA_HZ for i in range(int(DRIVE_S * CAMERA_HZ))]


def pose_times() -> list[float]:
    return [i / POSE_HZ - 0.013 for i in range(int(DRIVE_S * POSE_HZ) + 3)]


def robot_xy_yaw(t: float):
    return 0.8 * t, 0.05 * t, 0.03 * t


def camera_pose(t: float):
    """(x, y, z), (qx, qy, qz, qw) of the optical frame in map at t."""
    from clip_perception.core.memory import Pose

    x, y, yaw = robot_xy_yaw(t)
    robot = Pose((x, y, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)), "map")
    cam = robot.compose(Pose((0.0, 0.0, 0.0), OPTICAL_Q))
    return cam.position, cam.orientation


def in_camera(t: float, name: str) -> np.ndarray:
    """The object's centre in the optical frame at t."""
    from clip_perception.core.memory import Pose

    p, q = camera_pose(t)
    local = Pose(p, q, "map").inverse().compose(Pose(OBJECTS[name]))
    return np.array(local.position)


def box_at(t: float, name: str):
    """cx, cy, w, h in pixels of the object's box at t."""
    x, y, z = in_camera(t, name)
    u, v = FX * x / z + CX, FY * y / z + CY
    side = FX * SIZE / z
    return (u, v, side, side)


def texture(name: str, size: int = 32) -> np.ndarray:
    from conftest import natural_like_image

    return natural_like_image(size, size, seed={"A": 5, "B": 6}[name])


def render(t: float):
    """The camera image (RGB) and its aligned depth (m, NaN = no return) at t: each object a
    textured square at its true depth on a grey background; and the boxes, name -> bbox."""
    import cv2

    rgb = np.full((H, W, 3), 90, np.uint8)
    depth = np.full((H, W), np.nan, np.float32)
    boxes = {}
    for name in sorted(OBJECTS, key=lambda n: -in_camera(t, n)[2]):  # far first
        u, v, side, _ = box = box_at(t, name)
        x0, y0 = int(round(u - side / 2)), int(round(v - side / 2))
        x1, y1 = int(round(u + side / 2)), int(round(v + side / 2))
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            continue
        rgb[y0:y1, x0:x1] = cv2.resize(texture(name), (x1 - x0, y1 - y0),
                                       interpolation=cv2.INTER_AREA)
        depth[y0:y1, x0:x1] = in_camera(t, name)[2]
        boxes[name] = box
    return rgb, depth, boxes
