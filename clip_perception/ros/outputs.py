"""The node's output topics: ~/classification, ~/landmarks, ~/label_info, ~/debug_image.

Made by configure, released by cleanup. Results are sent only while the node is active, so an
encode abandoned by deactivate or shutdown never publishes; ~/label_info (transient local, like
a latched topic) goes out before the first result of each new label set.
"""
from __future__ import annotations

import threading
from typing import Callable

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ..core.pipeline import FrameResult
from ..core.scoring import UNKNOWN_LABEL
from ..core.vocabulary import LabelSet
from .conversions import (classification_message, label_info_message, landmarks_message,
                          rgb_image_message)
from .debug_image import DebugImageRenderer


class NodeOutputs:
    """``active()``: may results be sent now; ``decode(camera, msg)``: the frame's RGB (for the
    debug image); ``on_error(reason)``: rate-limited error log."""

    def __init__(self, node, active: Callable[[], bool], decode: Callable,
                 on_error: Callable[[str], None]):
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification, LabelInfo

        self._node, self._active = node, active
        results_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.classification = node.create_publisher(Classification, "~/classification",
                                                    results_qos)
        self.landmarks = node.create_publisher(Classification, "~/landmarks", results_qos)
        self.label_info = node.create_publisher(LabelInfo, "~/label_info", latched)
        self.debug_image = node.create_publisher(Image, "~/debug_image", 2)
        self._label_info_version = 0
        # Cameras whose debug image shows their labelled boxes (drawn from ros.detections).
        self.debug_boxes: Callable[[str], bool] = lambda camera: False
        self._label_info_lock = threading.Lock()
        self.debug = DebugImageRenderer(
            wanted=lambda: self.debug_image.get_subscription_count() > 0,
            decode=lambda r: decode(r.frame.camera, r.frame.payload),
            publish=lambda rgb, r: self._send(self.debug_image,
                                              rgb_image_message(rgb, r.frame.payload.header)),
            on_error=on_error)

    def publish(self, results: list[FrameResult], current: LabelSet) -> None:
        """One batch's results (worker thread); ``current``: the label set now serving."""
        if results and results[-1].label_set_version > self._label_info_version:
            self.publish_label_info(current)
        for r in results:
            header = r.frame.payload.header
            self._send(self.classification, classification_message(r, header))
            if r.landmarks:
                self._send(self.landmarks, landmarks_message(r, header))
        self.debug.offer([r for r in results if not self.debug_boxes(r.frame.camera)])

    def publish_label_info(self, label_set: LabelSet) -> None:
        """Once per label-set version (called per batch and by the 1 Hz timer)."""
        with self._label_info_lock:
            if label_set.version <= self._label_info_version:
                return
            self.label_info.publish(label_info_message(
                label_set.labels, label_set.spec.score_threshold, UNKNOWN_LABEL,
                self._node.get_clock().now().to_msg()))
            self._label_info_version = label_set.version

    def _send(self, publisher, msg) -> None:
        if self._active() and self._node.context.ok():
            publisher.publish(msg)

    def close(self) -> None:
        self.debug.close()
        for publisher in (self.classification, self.landmarks, self.label_info,
                          self.debug_image):
            self._node.destroy_publisher(publisher)
