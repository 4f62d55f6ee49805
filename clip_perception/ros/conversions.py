"""Message <-> numpy: camera messages to RGB arrays, results to vision_msgs, QoS from settings."""
from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np

from ..core.image_decode import (DEFAULT_MAX_IMAGE_PIXELS, FULL_SCALE16, FrameDecodeError,
                                 compressed_to_rgb, raw_to_rgb)
from ..core.pipeline import FrameResult

logger = logging.getLogger(__name__)

COMPRESSED_SUFFIX = "/compressed"
# Encodings for which cv_bridge's imgmsg_to_cv2(msg, "rgb8") is the same computation as
# core.image_decode.raw_to_rgb (same OpenCV colour codes). 16-bit images always use the
# package converter: cv_bridge always divides by 65535, ours honours image16_scale. Generic
# encodings (8UC1, 8UC3, 16UC1) carry no channel order and cv_bridge treats them differently.
CV_BRIDGE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


def is_compressed_topic(topic: str) -> bool:
    return topic.rstrip("/").endswith(COMPRESSED_SUFFIX)


def import_cv_bridge():
    """cv_bridge's CvBridge class, or None when this ROS install has no (importable) cv_bridge."""
    try:
        from cv_bridge import CvBridge
    except Exception as exc:  # ImportError, or a binary mismatch raising other errors
        logger.debug("cv_bridge not usable (%s); using the package's converter", exc)
        return None
    return CvBridge


class ImageConverter:
    """sensor_msgs/Image or CompressedImage -> HxWx3 uint8 RGB; raises FrameDecodeError.

    Uses cv_bridge for 8-bit raw images when it imports (``use_cv_bridge=None``: auto),
    otherwise ``core.image_decode`` (rosbags-image); both give the same arrays. Compressed
    images always go through ``core.image_decode.compressed_to_rgb``: cv_bridge's Python path
    decodes with the same cv2.imdecode but returns grayscale/alpha PNGs unconverted, and
    neither checks the decoded size first. ``scale16``: None (each frame's own maximum) or the
    16-bit value shown as white; ``max_pixels``: larger compressed images are refused.
    """

    def __init__(self, use_cv_bridge: Optional[bool] = None, scale16: Optional[float] =
                 FULL_SCALE16, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        bridge_class = import_cv_bridge() if use_cv_bridge in (None, True) else None
        if use_cv_bridge and bridge_class is None:
            raise RuntimeError("use_cv_bridge=True but cv_bridge does not import")
        self._bridge = bridge_class() if bridge_class is not None else None
        self.scale16 = scale16
        self.max_pixels = max_pixels

    @property
    def name(self) -> str:
        ours = "rosbags-image"
        return f"cv_bridge (8-bit), {ours} (others)" if self._bridge is not None else ours

    def image_to_rgb(self, msg) -> np.ndarray:
        if self._bridge is not None and msg.encoding in CV_BRIDGE_ENCODINGS:
            _check_raw_geometry(msg)  # cv_bridge would raise TypeError on short buffers
            try:
                return np.ascontiguousarray(self._bridge.imgmsg_to_cv2(msg, "rgb8"))
            except Exception as exc:
                raise FrameDecodeError(f"cv_bridge could not convert {msg.width}x{msg.height} "
                                       f"{msg.encoding}: {exc}") from exc
        return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                          bool(msg.is_bigendian), scale16=self.scale16)

    def compressed_to_rgb(self, msg) -> np.ndarray:
        return compressed_to_rgb(msg.format, msg.data, max_pixels=self.max_pixels)

    def for_topic(self, topic: str) -> Callable[[object], np.ndarray]:
        return self.compressed_to_rgb if is_compressed_topic(topic) else self.image_to_rgb


def _check_raw_geometry(msg) -> None:
    if msg.height <= 0 or msg.width <= 0:
        raise FrameDecodeError(f"empty image {msg.width}x{msg.height}")
    if len(msg.data) < msg.step * msg.height:
        raise FrameDecodeError(f"truncated image: {len(msg.data)} bytes, expected step*height = "
                               f"{msg.step}*{msg.height} = {msg.step * msg.height} for "
                               f"{msg.width}x{msg.height} {msg.encoding}")


def image_message_type(topic: str):
    from sensor_msgs.msg import CompressedImage, Image

    return CompressedImage if is_compressed_topic(topic) else Image


def image_qos(reliability: str, depth: int):
    """Keep-last ``depth``, volatile; ``best_effort`` matches camera drivers' sensor-data QoS."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, DurabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
        reliability=(ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                     else ReliabilityPolicy.RELIABLE))


def classification_message(result: FrameResult, header):
    """~/classification: top-k labels (score = probability), 'unknown' first if under threshold."""
    from vision_msgs.msg import Classification, ObjectHypothesis

    msg = Classification(header=header)
    msg.results = [ObjectHypothesis(class_id=h.label, score=float(h.score))
                   for h in result.classification.hypotheses]
    return msg


def landmarks_message(result: FrameResult, header):
    """~/landmarks: every landmark in parameter order, score = (smoothed) raw cosine."""
    from vision_msgs.msg import Classification, ObjectHypothesis

    msg = Classification(header=header)
    msg.results = [ObjectHypothesis(class_id=s.label, score=float(s.score))
                   for s in result.landmarks]
    return msg


UNKNOWN_CLASS_ID = 65535  # vision_msgs' "unlabelled" id, for the 'unknown' hypothesis


def label_info_message(labels, score_threshold: float, unknown_label: str, stamp):
    """~/label_info: class_map in label order (class_id = index; class_name = the label text,
    which is also ObjectHypothesis.class_id in ~/classification), threshold = score_threshold.
    With a threshold the 'unknown' hypothesis can appear: it gets the reserved id 65535.

    What the threshold applies to is the node's ``score_mode``: 'softmax', the best label's
    probability among the labels (its floor is 1/K); 'neglabel', the best label's probability
    against the negative words alone (the same meaning whatever the label count). In both,
    'unknown' is published first, scored with that number, when it is below threshold."""
    from vision_msgs.msg import LabelInfo, VisionClass

    msg = LabelInfo()
    msg.header.stamp = stamp
    msg.class_map = [VisionClass(class_id=i, class_name=name) for i, name in enumerate(labels)]
    if score_threshold > 0:
        msg.class_map.append(VisionClass(class_id=UNKNOWN_CLASS_ID, class_name=unknown_label))
    msg.threshold = float(score_threshold)
    return msg


def rgb_image_message(rgb: np.ndarray, header):
    """HxWx3 uint8 RGB -> sensor_msgs/Image rgb8 with ``header`` (the source frame's)."""
    from sensor_msgs.msg import Image

    height, width = rgb.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                step=width * 3)
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg
