"""Pose-carrying messages -> Pose, duck-typed: the same code reads rclpy messages (the node)
and rosbags' deserialised messages (build_memory), which have the same field names."""
from __future__ import annotations

from .errors import PlaceMemoryError
from .geometry import Pose

ODOMETRY = "nav_msgs/msg/Odometry"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_WITH_COVARIANCE = "geometry_msgs/msg/PoseWithCovarianceStamped"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
POSE_TYPES = (ODOMETRY, POSE_STAMPED, POSE_WITH_COVARIANCE)
# memory.pose_type parameter values
POSE_TYPE_NAMES = {"odometry": ODOMETRY, "pose_stamped": POSE_STAMPED,
                   "pose_with_covariance": POSE_WITH_COVARIANCE}


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _pose(p, frame_id: str) -> Pose:
    o = p.orientation
    return Pose((p.position.x, p.position.y, p.position.z), (o.x, o.y, o.z, o.w), frame_id)


def pose_sample(msgtype: str, msg) -> tuple[int, Pose]:
    """(stamp ns, pose in header.frame_id) of an Odometry, PoseStamped or
    PoseWithCovarianceStamped; raises PlaceMemoryError for anything else or a bad quaternion."""
    if msgtype == POSE_STAMPED:
        p = msg.pose
    elif msgtype in (ODOMETRY, POSE_WITH_COVARIANCE):
        p = msg.pose.pose
    else:
        raise PlaceMemoryError(f"pose topic type {msgtype} is not one of {', '.join(POSE_TYPES)}")
    frame = msg.header.frame_id.lstrip("/")
    try:
        return stamp_to_ns(msg.header.stamp), _pose(p, frame)
    except ValueError as exc:
        raise PlaceMemoryError(f"{msgtype} at {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
                               f": {exc}") from None


def transforms(msg) -> list[tuple[str, str, int, Pose]]:
    """(parent, child, stamp ns, child pose in parent) for each TransformStamped of a TFMessage."""
    out = []
    for t in msg.transforms:
        tr, r = t.transform.translation, t.transform.rotation
        try:
            pose = Pose((tr.x, tr.y, tr.z), (r.x, r.y, r.z, r.w), t.header.frame_id)
        except ValueError as exc:
            raise PlaceMemoryError(f"transform {t.header.frame_id} -> {t.child_frame_id}: "
                                   f"{exc}") from None
        out.append((t.header.frame_id, t.child_frame_id, stamp_to_ns(t.header.stamp), pose))
    return out
