"""Detection messages <-> core.detections: input arrays to ``InputBox``es, stamps, depth and
camera_info to arrays, and ``FrameDetections`` to ~/detections, ~/detection_landmarks and
~/detections_3d.

What the outputs contain (README "Label another detector's boxes"):
- ``~/detections`` (Detection2DArray): header of the source frame; one Detection2D per labelled
  box in input order with the input's ``bbox`` unchanged, ``id`` = the input's id (or its
  index), ``results`` = the top-k labels (``hypothesis.class_id`` = label text, ``score`` =
  probability, 'unknown' first under ``score_threshold``, as ~/classification), followed by
  the detector's own hypotheses unchanged except ``class_id`` prefixed with
  ``SOURCE_PREFIX`` ("detector:"), so nothing the detector said is lost.
- ``~/detection_landmarks``: the same boxes, ``results`` = every landmark in parameter order,
  score = raw cosine (as ~/landmarks).
- ``~/detections_3d`` (Detection3DArray): stamp of the frame, ``frame_id`` of the depth image
  (its optical frame); per box the top-k labels, ``bbox.center.position`` = the back-projected
  centre, ``bbox.size`` = its extent at that depth; NaN position and size when the box has no
  valid depth (counted in /diagnostics).
"""
from __future__ import annotations

import math
import struct
from typing import Optional

from ..core.detections.boxes import InputBox
from ..core.detections.depth import CameraModel, depth_to_metres
from ..core.detections.results import FrameDetections

SOURCE_PREFIX = "detector:"
# CDR encapsulation ids whose payload starts directly with the message's first field
# (plain CDR and plain XCDR2, big/little endian); ROS messages are final structs.
_PLAIN_CDR = {0x00: ">", 0x01: "<", 0x06: ">", 0x07: "<"}


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def serialized_stamp_ns(data: bytes, msg_type=None) -> int:
    """``header.stamp`` of a serialized message whose first field is a std_msgs/Header (Image,
    CompressedImage), read from the CDR bytes without deserializing the image; other
    encapsulations are deserialized (``msg_type``)."""
    if len(data) >= 12 and data[0] == 0 and data[1] in _PLAIN_CDR:
        sec, nanosec = struct.unpack_from(_PLAIN_CDR[data[1]] + "iI", data, 4)
        return sec * 1_000_000_000 + nanosec
    if msg_type is None:
        raise ValueError(f"not a plain CDR message (encapsulation {bytes(data[:2]).hex()})")
    from rclpy.serialization import deserialize_message

    return stamp_ns(deserialize_message(data, msg_type).header.stamp)


def input_boxes(msg) -> list[InputBox]:
    """A Detection2DArray's boxes, in order (``id`` = the input's, or the index)."""
    out = []
    for i, d in enumerate(msg.detections):
        b = d.bbox
        out.append(InputBox(
            index=i, id=d.id or str(i),
            bbox=(float(b.center.position.x), float(b.center.position.y), float(b.size_x),
                  float(b.size_y)),
            source_hypotheses=tuple((r.hypothesis.class_id, float(r.hypothesis.score))
                                    for r in d.results),
            theta=float(b.center.theta)))
    return out


def depth_image_metres(msg):
    """sensor_msgs/Image (16UC1 / 32FC1) -> HxW float32 metres; DetectionInputError if not."""
    return depth_to_metres(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                           bool(msg.is_bigendian))


def camera_model(msg) -> CameraModel:
    """sensor_msgs/CameraInfo -> CameraModel (K, size); DetectionInputError if unusable."""
    return CameraModel.from_k(list(msg.k), msg.width, msg.height)


def _hypotheses(pairs):
    from vision_msgs.msg import ObjectHypothesis, ObjectHypothesisWithPose

    return [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=label,
                                                                 score=float(score)))
            for label, score in pairs]


def _source_results(detection):
    """The input Detection2D's own results, class_id prefixed, pose kept."""
    from vision_msgs.msg import ObjectHypothesis, ObjectHypothesisWithPose

    return [ObjectHypothesisWithPose(
        hypothesis=ObjectHypothesis(class_id=SOURCE_PREFIX + r.hypothesis.class_id,
                                    score=r.hypothesis.score), pose=r.pose)
            for r in detection.results]


def detections_message(header, source, result: FrameDetections, landmarks: bool = False):
    """~/detections (``landmarks``: ~/detection_landmarks); ``source``: the input array."""
    from vision_msgs.msg import Detection2D, Detection2DArray

    msg = Detection2DArray(header=header)
    for box in result.boxes:
        given = source.detections[box.index]
        results = (_hypotheses(box.landmarks) if landmarks else
                   _hypotheses(box.hypotheses) + _source_results(given))
        msg.detections.append(Detection2D(header=header, results=results, bbox=given.bbox,
                                          id=box.id))
    return msg


def detections_3d_message(header, frame_id: Optional[str], result: FrameDetections):
    """~/detections_3d: ``header``'s stamp, ``frame_id`` of the depth image (None: the
    source frame's, when no depth image came for this frame)."""
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection3D, Detection3DArray

    out_header = Header(stamp=header.stamp, frame_id=frame_id or header.frame_id)
    msg = Detection3DArray(header=out_header)
    nan = math.nan
    for box in result.boxes:
        d = Detection3D(header=out_header, results=_hypotheses(box.hypotheses), id=box.id)
        p = box.position if box.position is not None else (nan, nan, nan)
        s = box.size if box.size is not None else (nan, nan, nan)
        d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z = \
            (float(v) for v in p)
        d.bbox.center.orientation.w = 1.0
        d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = (float(v) for v in s)
        msg.detections.append(d)
    return msg
