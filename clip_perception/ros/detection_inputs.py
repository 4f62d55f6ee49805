"""The detection path's inputs on the graph: per camera a Detection2DArray subscription, and
with depth a raw depth image subscription and a CameraInfo subscription; camera frames come
from the intake's hook. Each goes into the ``StampPairing`` by stamp; nothing here decodes an
image (depth is converted by the worker, only for arrays that use it).

The subscriptions live on the intake's helper node (its own executor thread), beside the
camera subscriptions, so depth images at 30 Hz do not load the node's executor.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ..core.detections.boxes import DetectionInputError
from ..core.detections.depth import BAD_CAMERA_INFO, CameraModel, NO_CAMERA_INFO
from ..core.detections.pairing import StampPairing
from ..core.detections.settings import DetectionSettings
from ..core.detections.stats import DetectionStats
from ..core.pipeline import PendingFrame
from .conversions import image_qos
from .detection_messages import camera_model, serialized_stamp_ns, stamp_ns
from .intake import SerializedFrame

UNREADABLE_FRAME = "frame stamp unreadable"


class DetectionInputs:
    """Frames (``on_frame``, from the intake), arrays, depth and camera_info -> ``pairing``."""

    def __init__(self, settings: DetectionSettings, pairing: StampPairing,
                 stats: DetectionStats, on_error: Callable[[str], None]):
        self.settings, self.pairing, self.stats = settings, pairing, stats
        self._on_error = on_error
        self._models: dict[str, "CameraModel | str"] = {
            c.camera: NO_CAMERA_INFO for c in settings.cameras if c.camera_info}
        self._models_lock = threading.Lock()
        self._node = None
        self.subscriptions: list = []

    # ---- subscriptions (activate / deactivate) -------------------------------------------------
    def subscribe(self, node, reliability: str, depth: int) -> None:
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Detection2DArray

        qos = image_qos(reliability, depth)
        self._node = node
        for cam in self.settings.cameras:
            self.subscriptions.append(node.create_subscription(
                Detection2DArray, cam.boxes, self._boxes_callback(cam.camera), qos))
            if cam.depth:
                self.subscriptions.append(node.create_subscription(
                    Image, cam.depth, self._depth_callback(cam.camera), qos, raw=True))
                self.subscriptions.append(node.create_subscription(
                    CameraInfo, cam.camera_info, self._info_callback(cam.camera), qos))

    def unsubscribe(self) -> None:
        subs, self.subscriptions = self.subscriptions, []
        if self._node is not None:
            for sub in subs:
                self._node.destroy_subscription(sub)
        self._node = None

    def describe(self) -> str:
        parts = []
        for cam in self.settings.cameras:
            extra = f", depth {cam.depth}, camera_info {cam.camera_info}" if cam.depth else ""
            parts.append(f"{cam.camera}: boxes {cam.boxes}{extra}")
        return "; ".join(parts)

    # ---- callbacks (intake executor thread) ----------------------------------------------------
    def on_frame(self, camera: str, frame: SerializedFrame) -> None:
        """The intake's hook: every frame of a camera with boxes goes into the buffer."""
        if not self.pairing.wants(camera):
            return
        try:
            stamp = serialized_stamp_ns(frame.data, frame.msg_type)
        except Exception as exc:  # a frame the worker will refuse too; never stop the intake
            self.stats.note_problem(camera, f"{UNREADABLE_FRAME}: {exc}")
            return
        self.pairing.put_frame(camera, stamp, PendingFrame(camera, frame, time.monotonic()))

    def _boxes_callback(self, camera: str):
        def store(msg) -> None:
            self.pairing.put_boxes(camera, stamp_ns(msg.header.stamp), msg)
        return store

    def _depth_callback(self, camera: str):
        from sensor_msgs.msg import Image

        def store(data: bytes) -> None:
            try:
                stamp = serialized_stamp_ns(data, Image)
            except Exception as exc:
                self.stats.input_refused(camera, "depth image unreadable", str(exc))
                return
            self.pairing.put_depth(camera, stamp, SerializedFrame(data, Image))
        return store

    def _info_callback(self, camera: str):
        def store(msg) -> None:
            try:
                model: "CameraModel | str" = camera_model(msg)
            except DetectionInputError as exc:
                self.stats.input_refused(camera, BAD_CAMERA_INFO, str(exc))
                model = str(exc)
            with self._models_lock:
                self._models[camera] = model
        return store

    def camera_model(self, camera: str) -> "tuple[Optional[CameraModel], str]":
        """(the newest usable CameraModel, "") or (None, why there is none)."""
        with self._models_lock:
            model = self._models.get(camera, NO_CAMERA_INFO)
        return (model, "") if isinstance(model, CameraModel) else (None, model)
