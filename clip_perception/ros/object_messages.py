"""Memory objects <-> messages: clip_perception_msgs/MemoryObject and the RViz markers of
~/objects/markers. Plain functions."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.memory.object_query import ObjectMatch
from ..core.memory.object_store import MemoryObject
from .place_messages import _color, pose_stamped, score_colors, stamp_message

MARKER_NS_OBJECTS, MARKER_NS_OBJECT_LABELS = "objects", "object_labels"
MAX_MARKERS = 5000  # objects drawn per query (RViz slows down past a few thousand)
UNSCORED = (0.5, 0.5, 0.5, 0.6)  # objects the last query did not score: grey


def object_message(m: ObjectMatch, fixed_frame: str):
    from clip_perception_msgs.msg import MemoryObject as ObjectMsg

    o = m.object
    msg = ObjectMsg(has_position=o.position is not None,
                    seen_from=pose_stamped(o.seen_from, o.last_seen_ns),
                    score=float(m.score), scores=[float(s) for s in m.scores],
                    observations=int(o.observations), first_seen=stamp_message(o.first_seen_ns),
                    last_seen=stamp_message(o.last_seen_ns), camera=o.camera, label=o.label,
                    object_id=int(o.object_id))
    msg.position.header.frame_id = fixed_frame
    msg.position.header.stamp = stamp_message(o.last_seen_ns)
    if o.position is not None:
        msg.position.point.x, msg.position.point.y, msg.position.point.z = \
            (float(v) for v in o.position)
    return msg


def object_markers(fixed_frame: str, stamp, objects: Sequence[MemoryObject],
                   scored: dict[int, float], matches: Sequence[ObjectMatch]):
    """One sphere per object (at its position; without depth at the pose it was seen from,
    smaller), coloured by the last query's score (blue lowest .. red highest, grey when that
    query did not score it), and a label over each of the query's matches. Starts with
    DELETEALL so an earlier query's markers disappear."""
    from visualization_msgs.msg import Marker, MarkerArray

    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id, clear.header.stamp = fixed_frame, stamp
    out.markers.append(clear)
    objects = list(objects)[:MAX_MARKERS]
    values = np.array([scored[o.object_id] for o in objects if o.object_id in scored])
    colors = iter(score_colors(values)) if values.size else iter(())
    for i, o in enumerate(objects):
        m = Marker(ns=MARKER_NS_OBJECTS, id=i, type=Marker.SPHERE, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = fixed_frame, stamp
        where = o.position if o.position is not None else o.seen_from.position
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in where)
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 0.25 if o.position is not None else 0.12
        m.color = next(colors) if o.object_id in scored else _color(*UNSCORED)
        out.markers.append(m)
    for rank, match in enumerate(matches, start=1):
        o = match.object
        where = o.position if o.position is not None else o.seen_from.position
        label = Marker(ns=MARKER_NS_OBJECT_LABELS, id=rank, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD)
        label.header.frame_id, label.header.stamp = fixed_frame, stamp
        label.pose.position.x, label.pose.position.y, label.pose.position.z = \
            float(where[0]), float(where[1]), float(where[2]) + 0.35
        label.pose.orientation.w = 1.0
        label.scale.z = 0.2
        label.color = _color(1.0, 1.0, 1.0)
        label.text = f"#{rank} {o.label or 'object'} {match.score:.2f} ({o.observations}x)"
        out.markers.append(label)
    return out
