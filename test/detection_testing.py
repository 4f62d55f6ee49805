"""Messages a detector, a depth camera and a camera_info publisher send, for the detection tests
(imported by name: pytest puts test/ on sys.path)."""
from __future__ import annotations

import numpy as np


def set_stamp(header, stamp_ns: int, frame_id: str = "") -> None:
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 10 ** 9)
    header.frame_id = frame_id


def detection_array(stamp_ns: int, boxes, frame_id: str = "camera_optical", classes=None):
    """``boxes``: (cx, cy, w, h) each; ``classes``: per box (class_id, score) or None."""
    from vision_msgs.msg import (Detection2D, Detection2DArray, ObjectHypothesis,
                                 ObjectHypothesisWithPose)

    msg = Detection2DArray()
    set_stamp(msg.header, stamp_ns, frame_id)
    for i, (cx, cy, w, h) in enumerate(boxes):
        d = Detection2D(id=f"det{i}")
        d.header = msg.header
        d.bbox.center.position.x, d.bbox.center.position.y = float(cx), float(cy)
        d.bbox.size_x, d.bbox.size_y = float(w), float(h)
        if classes is not None and classes[i] is not None:
            class_id, score = classes[i]
            d.results = [ObjectHypothesisWithPose(
                hypothesis=ObjectHypothesis(class_id=class_id, score=score))]
        msg.detections.append(d)
    return msg


def depth_msg(depth_m: np.ndarray, stamp_ns: int, frame_id: str = "depth_optical",
              encoding: str = "16UC1"):
    from sensor_msgs.msg import Image

    msg = Image()
    set_stamp(msg.header, stamp_ns, frame_id)
    msg.height, msg.width = depth_m.shape
    msg.encoding = encoding
    if encoding == "16UC1":
        data = np.nan_to_num(np.round(depth_m * 1000), nan=0).astype("<u2")
    elif encoding == "32FC1":
        data = depth_m.astype("<f4")
    else:  # another encoding, e.g. mono8
        data = np.zeros(depth_m.shape, np.uint8)
    msg.step = depth_m.shape[1] * data.itemsize
    msg.data = data.tobytes()
    return msg


def camera_info_msg(k, width: int, height: int, stamp_ns: int = 0,
                    frame_id: str = "depth_optical"):
    """``k``: (fx, fy, cx, cy)."""
    from sensor_msgs.msg import CameraInfo

    fx, fy, cx, cy = k
    msg = CameraInfo(width=width, height=height)
    set_stamp(msg.header, stamp_ns, frame_id)
    msg.k = [float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0]
    return msg


def plane_depth(k, normal, offset: float, width: int, height: int) -> np.ndarray:
    """Depth (m) of the plane n . X = offset through K (fx, fy, cx, cy) at every pixel."""
    fx, fy, cx, cy = k
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)
    return offset / (rays @ np.asarray(normal, np.float64))


def plane_point(k, normal, offset: float, u: float, v: float) -> np.ndarray:
    fx, fy, cx, cy = k
    ray = np.array([(u - cx) / fx, (v - cy) / fy, 1.0])
    return ray * offset / (ray @ np.asarray(normal, np.float64))


def hypotheses(msg_results) -> list[tuple[str, float]]:
    return [(r.hypothesis.class_id, r.hypothesis.score) for r in msg_results]
