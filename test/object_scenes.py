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


def write_objects_bag(path, depth: bool = True):
    """rosbag2 (mcap) of the drive: /camera/image_raw (rgb8), /camera/depth (16UC1 mm, aligned),
    /camera/camera_info, /detector/boxes (vision_msgs/Detection2DArray of both objects, the
    detector's class 'thing') and /camera_pose (PoseStamped of the optical frame in map). The
    boxes are recorded 40 ms after their frame, the poses 30 ms after their stamp."""
    from pathlib import Path

    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    repo = Path(__file__).resolve().parents[1]
    types = {}
    for name in ("ObjectHypothesis", "ObjectHypothesisWithPose", "Point2D", "Pose2D",
                 "BoundingBox2D", "Detection2D", "Detection2DArray"):
        f = repo / "msgs" / "vision_msgs" / "msg" / f"{name}.msg"
        types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{name}"))
    ts.register(types)
    T = ts.types
    Header = T["std_msgs/msg/Header"]

    def header(t_ns, frame):
        return Header(stamp=T["builtin_interfaces/msg/Time"](sec=t_ns // 10 ** 9,
                                                             nanosec=t_ns % 10 ** 9),
                      frame_id=frame)

    messages = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {n: w.add_connection(n, t, typestore=ts) for n, t in (
            ("/camera/image_raw", "sensor_msgs/msg/Image"),
            ("/camera/depth", "sensor_msgs/msg/Image"),
            ("/camera/camera_info", "sensor_msgs/msg/CameraInfo"),
            ("/detector/boxes", "vision_msgs/msg/Detection2DArray"),
            ("/camera_pose", "geometry_msgs/msg/PoseStamped"))}

        def put(topic, t_ns, msg, msgtype):
            messages.append((t_ns, conns[topic], ts.serialize_cdr(msg, msgtype)))

        for t in pose_times():
            t_ns = T0 + int(round(t * 1e9))
            p, q = camera_pose(t)
            put("/camera_pose", t_ns + 30_000_000, T["geometry_msgs/msg/PoseStamped"](
                header=header(t_ns, "map"), pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
                    orientation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2],
                                                                  w=q[3]))),
                "geometry_msgs/msg/PoseStamped")
        for t in frame_times():
            t_ns = T0 + int(round(t * 1e9))
            rgb, depth_m, boxes = render(t)
            put("/camera/image_raw", t_ns, T["sensor_msgs/msg/Image"](
                header=header(t_ns, "cam_optical"), height=H, width=W, encoding="rgb8",
                is_bigendian=0, step=W * 3, data=rgb.reshape(-1)), "sensor_msgs/msg/Image")
            if depth:
                mm = np.nan_to_num(np.round(depth_m * 1000), nan=0).astype("<u2")
                put("/camera/depth", t_ns + 1, T["sensor_msgs/msg/Image"](
                    header=header(t_ns, "cam_optical"), height=H, width=W, encoding="16UC1",
                    is_bigendian=0, step=W * 2, data=mm.view(np.uint8).reshape(-1)),
                    "sensor_msgs/msg/Image")
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=header(t_ns, "cam_optical"), height=H, width=W,
                    distortion_model="plumb_bob", d=np.zeros(5),
                    k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], float),
                    r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=0, binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                              width=0, do_rectify=False))
                put("/camera/camera_info", t_ns + 2, info, "sensor_msgs/msg/CameraInfo")
            dets = []
            for i, name in enumerate(sorted(boxes)):
                cx, cy, w_, h_ = boxes[name]
                dets.append(T["vision_msgs/msg/Detection2D"](
                    header=header(t_ns, "cam_optical"), id=f"det{i}",
                    results=[T["vision_msgs/msg/ObjectHypothesisWithPose"](
                        hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id="thing",
                                                                          score=0.9),
                        pose=T["geometry_msgs/msg/PoseWithCovariance"](
                            pose=T["geometry_msgs/msg/Pose"](
                                position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                orientation=T["geometry_msgs/msg/Quaternion"](
                                    x=0.0, y=0.0, z=0.0, w=1.0)),
                            covariance=np.zeros(36)))],
                    bbox=T["vision_msgs/msg/BoundingBox2D"](
                        center=T["vision_msgs/msg/Pose2D"](
                            position=T["vision_msgs/msg/Point2D"](x=cx, y=cy), theta=0.0),
                        size_x=w_, size_y=h_)))
            put("/detector/boxes", t_ns + 40_000_000, T["vision_msgs/msg/Detection2DArray"](
                header=header(t_ns, "cam_optical"), detections=dets),
                "vision_msgs/msg/Detection2DArray")
        for t_ns, conn, raw in sorted(messages, key=lambda m: m[0]):
            w.write(conn, t_ns, raw)
    return path
