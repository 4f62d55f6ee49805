"""A drive past three scenes, for place-memory tests: the robot moves along +x at 1 m/s and the
camera shows scene A, then B (the "red door"), then C. With a random CLIP, texts mean nothing,
so tests query by a scene's own image: by construction only B's keyframes match it exactly."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from conftest import natural_like_image

T0 = 1_700_000_000 * 10 ** 9
SPEED = 1.0  # m/s along +x
SEGMENTS = (("A", 0.0, 4.0), ("B", 4.0, 8.0), ("C", 8.0, 12.0))  # scene, t from, t to (s)
IMAGE_HZ, POSE_HZ = 5.0, 20.0
H, W = 48, 64


def scene_image(name: str) -> np.ndarray:
    return natural_like_image(H, W, seed={"A": 11, "B": 22, "C": 33}[name])


def scene_at(t: float) -> str:
    return next(name for name, a, b in SEGMENTS if a <= t < b)


def robot_pose(t: float):
    """(x, y, z), (qx, qy, qz, qw) in map at t seconds: straight along x, a slow left turn."""
    yaw = 0.02 * t
    return (SPEED * t, 0.0, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def image_times() -> list[float]:
    return [i / IMAGE_HZ for i in range(int(SEGMENTS[-1][2] * IMAGE_HZ))]


def pose_times() -> list[float]:
    # offset by 13 ms so image stamps fall between samples and are interpolated
    return [i / POSE_HZ - 0.013 for i in range(int(SEGMENTS[-1][2] * POSE_HZ) + 2)]


def x_range(name: str) -> tuple[float, float]:
    _, a, b = next(s for s in SEGMENTS if s[0] == name)
    return SPEED * a, SPEED * b


def _stamp(ts, t_ns: int):
    return ts.types["builtin_interfaces/msg/Time"](sec=t_ns // 10 ** 9, nanosec=t_ns % 10 ** 9)


def write_drive_bag(path: Path, tf: bool = False) -> Path:
    """rosbag2 (mcap): /camera/image_raw (rgb8, frame camera_optical) and either /odom
    (nav_msgs/Odometry in map) or /tf (odom -> base_link) + /tf_static (map -> odom offset by
    +100 m in x, base_link -> camera_optical 0.2 m ahead). Poses are recorded 30 ms after their
    stamp and images 5 ms after theirs, so some images arrive before the poses bracketing them."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    Header, Image = T["std_msgs/msg/Header"], T["sensor_msgs/msg/Image"]
    Point, Quat = T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"]
    Vec = T["geometry_msgs/msg/Vector3"]

    def transform(parent, child, t_ns, p, q):
        return T["geometry_msgs/msg/TransformStamped"](
            header=Header(stamp=_stamp(ts, t_ns), frame_id=parent), child_frame_id=child,
            transform=T["geometry_msgs/msg/Transform"](translation=Vec(x=p[0], y=p[1], z=p[2]),
                                                       rotation=Quat(x=q[0], y=q[1], z=q[2], w=q[3])))

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_img = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        if tf:
            c_tf = w.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
            c_static = w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=ts)
            static = T["tf2_msgs/msg/TFMessage"](transforms=[
                transform("map", "odom", T0, (100.0, 0.0, 0.0), (0, 0, 0, 1)),
                transform("base_link", "camera_optical", T0, (0.2, 0.0, 0.0), (0, 0, 0, 1))])
            w.write(c_static, T0 - 10 ** 9, ts.serialize_cdr(static, "tf2_msgs/msg/TFMessage"))
        else:
            c_odom = w.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=ts)
        messages = []
        for t in pose_times():
            t_ns = T0 + int(round(t * 1e9))
            p, q = robot_pose(t)
            if tf:
                msg = T["tf2_msgs/msg/TFMessage"](transforms=[transform("odom", "base_link", t_ns,
                                                                        p, q)])
                messages.append((t_ns + 30_000_000, c_tf, ts.serialize_cdr(
                    msg, "tf2_msgs/msg/TFMessage")))
            else:
                zero = Vec(x=0.0, y=0.0, z=0.0)
                odom = T["nav_msgs/msg/Odometry"](
                    header=Header(stamp=_stamp(ts, t_ns), frame_id="map"),
                    child_frame_id="base_link",
                    pose=T["geometry_msgs/msg/PoseWithCovariance"](
                        pose=T["geometry_msgs/msg/Pose"](
                            position=Point(x=p[0], y=p[1], z=p[2]),
                            orientation=Quat(x=q[0], y=q[1], z=q[2], w=q[3])),
                        covariance=np.zeros(36)),
                    twist=T["geometry_msgs/msg/TwistWithCovariance"](
                        twist=T["geometry_msgs/msg/Twist"](linear=zero, angular=zero),
                        covariance=np.zeros(36)))
                messages.append((t_ns + 30_000_000, c_odom,
                                 ts.serialize_cdr(odom, "nav_msgs/msg/Odometry")))
        for t in image_times():
            t_ns = T0 + int(round(t * 1e9))
            rgb = scene_image(scene_at(t))
            img = Image(header=Header(stamp=_stamp(ts, t_ns), frame_id="camera_optical"),
                        height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
                        data=rgb.reshape(-1))
            messages.append((t_ns + 5_000_000, c_img, ts.serialize_cdr(img, "sensor_msgs/msg/Image")))
        for t_ns, conn, raw in sorted(messages, key=lambda m: m[0]):
            w.write(conn, t_ns, raw)
    return path
