"""Place-memory messages <-> core values: poses, places, RViz markers. Plain functions."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.memory import Place, Pose
from ..core.memory.pose_messages import POSE_TYPE_NAMES

MARKER_NS_KEYFRAMES, MARKER_NS_PLACES, MARKER_NS_LABELS = "keyframes", "places", "place_labels"


def pose_message_type(pose_type: str):
    """memory.pose_type -> the message class (Odometry, PoseStamped, PoseWithCovarianceStamped)."""
    from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
    from nav_msgs.msg import Odometry

    classes = {"odometry": Odometry, "pose_stamped": PoseStamped,
               "pose_with_covariance": PoseWithCovarianceStamped}
    return classes[pose_type], POSE_TYPE_NAMES[pose_type]


def stamp_message(stamp_ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def pose_stamped(pose: Pose, stamp_ns: int):
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.frame_id = pose.frame_id
    msg.header.stamp = stamp_message(stamp_ns)
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = pose.position
    q.x, q.y, q.z, q.w = pose.orientation
    return msg


def place_message(place: Place):
    from clip_perception_msgs.msg import Place as PlaceMsg

    kf = place.keyframe
    return PlaceMsg(pose=pose_stamped(kf.pose, kf.stamp_ns), score=float(place.score),
                    scores=[float(s) for s in place.scores], stamp=stamp_message(kf.stamp_ns),
                    camera=kf.camera, keyframe_id=int(kf.keyframe_id))


def _color(r, g, b, a=1.0):
    from std_msgs.msg import ColorRGBA

    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))


def score_colors(scores: np.ndarray) -> list:
    """Blue (lowest of this query) -> red (highest)."""
    scores = np.asarray(scores, np.float64)
    span = float(scores.max() - scores.min()) if scores.size else 0.0
    t = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    return [_color(v, 0.2, 1.0 - v) for v in t]


def markers(fixed_frame: str, stamp, keyframe_poses: Sequence[Pose], keyframe_scores,
            places: Sequence[Place]):
    """~/places/markers: the scored keyframes as spheres coloured by score, one arrow and label
    per place; starts with DELETEALL so markers of an earlier query disappear."""
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray

    def marker(ns, mid, mtype):
        m = Marker(ns=ns, id=mid, type=mtype, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = fixed_frame, stamp
        m.pose.orientation.w = 1.0
        return m

    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id, clear.header.stamp = fixed_frame, stamp
    out.markers.append(clear)
    if keyframe_poses:
        spheres = marker(MARKER_NS_KEYFRAMES, 0, Marker.SPHERE_LIST)
        spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.15
        spheres.points = [Point(x=p.position[0], y=p.position[1], z=p.position[2])
                          for p in keyframe_poses]
        spheres.colors = score_colors(keyframe_scores)
        out.markers.append(spheres)
    for rank, place in enumerate(places, start=1):
        arrow = marker(MARKER_NS_PLACES, rank, Marker.ARROW)
        arrow.pose = pose_stamped(place.keyframe.pose, 0).pose
        arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.6, 0.1, 0.1
        arrow.color = _color(0.1, 0.9, 0.1)
        label = marker(MARKER_NS_LABELS, rank, Marker.TEXT_VIEW_FACING)
        label.pose = pose_stamped(place.keyframe.pose, 0).pose
        label.pose.position.z += 0.4
        label.scale.z = 0.25
        label.color = _color(1.0, 1.0, 1.0)
        label.text = f"#{rank} {place.score:.2f}"
        out.markers += [arrow, label]
    return out


def clear_markers(fixed_frame: str, stamp):
    from visualization_msgs.msg import Marker, MarkerArray

    m = Marker(action=Marker.DELETEALL)
    m.header.frame_id, m.header.stamp = fixed_frame, stamp
    return MarkerArray(markers=[m])
