"""Another detector's boxes on the graph: labelled on ~/detections, ~/detection_landmarks and,
with depth, placed on ~/detections_3d (issue 21).

``DetectionInterface`` is made by configure (publishers, pairing, counters) and subscribed by
activate (``detection_inputs``). It is the worker's ``BatchCompanion``: before each engine call
the worker asks ``take`` for the crops of the arrays paired since, encodes them in the same
call as that batch's frames, and hands the embeddings back to ``CropWork.finish``, which scores
them with the batch's label set, publishes, and gives each ``FrameDetections`` to ``sink``
(the memory recorder, when set). A frame is decoded once: its RGB is kept on the frame
(``SerializedFrame.rgb``) for its crops, its classification and the debug image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..core.detections import pairing as pairing_reasons
from ..core.detections.boxes import DetectionInputError
from ..core.detections.depth import DEPTH_SIZE
from ..core.detections.labelling import (CropBatch, DepthView, encode_in_chunks, label_crops,
                                         prepare_crops)
from ..core.detections.pairing import PairedJob, StampPairing
from ..core.detections.results import FrameDetections
from ..core.detections.settings import DetectionSettings, live_values
from ..core.detections.stats import DetectionStats, reason_key
from ..core.pipeline import FrameResult
from ..core.scoring import Classification
from .detection_diagnostics import detection_statuses
from .detection_inputs import DetectionInputs
from .detection_messages import (depth_image_metres, detections_3d_message,
                                 detections_message, input_boxes)

FRAME_UNUSABLE = "frame could not be decoded"
INFERENCE_FAILED = "inference failed"
PUBLISH_FAILED = "publishing failed"


@dataclass
class DetectionsView:
    """What ~/debug_image draws for a camera with boxes: the frame, its own top labels (when
    this frame was also classified) and its labelled boxes."""
    frame: object  # PendingFrame
    classification: Classification
    landmarks: tuple
    detections: FrameDetections


class CropWork:
    """The crops of the arrays taken for one engine call (``inputs``, in ``parts`` order)."""

    def __init__(self, owner: "DetectionInterface", parts: list[tuple[PairedJob, CropBatch]]):
        self._owner, self.parts = owner, parts
        self.inputs = [crop for _, batch in parts for crop in batch.inputs]
        self._started = time.perf_counter()

    def finish(self, embeddings: np.ndarray, label_set) -> None:
        start = 0
        for job, batch in self.parts:
            rows = embeddings[start:start + len(batch.boxes)]
            start += len(batch.boxes)
            self._owner._finish(job, batch, rows, label_set, self._started)

    def fail(self, reason: str) -> None:
        for job, batch in self.parts:
            self._owner.stats.array_refused(job.camera, INFERENCE_FAILED, reason,
                                            len(batch.boxes) + len(batch.skipped))


class DetectionInterface:
    """``decode(camera, payload)``: the frame's RGB (decoded once); ``preprocess``: the node's
    ``Preprocessor.resize_crop``; ``active()``: may results be sent; ``offer_debug(views)``:
    ~/debug_image; ``on_error``: rate-limited error log."""

    def __init__(self, node, settings: DetectionSettings, decode: Callable, preprocess: Callable,
                 active: Callable[[], bool], offer_debug: Callable[[list], None],
                 on_error: Callable[[str], None]):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Detection2DArray, Detection3DArray

        self._node, self.settings = node, settings
        self._decode, self._preprocess, self._active = decode, preprocess, active
        self._offer_debug, self._on_error = offer_debug, on_error
        self.crop_padding = settings.crop_padding  # live
        self.max_detections = settings.max_detections_per_frame  # live
        self.sink: Optional[Callable[[FrameDetections], None]] = None
        self.keep_crops = False  # set with a sink that stores thumbnails
        cameras = [c.camera for c in settings.cameras]
        self.stats = DetectionStats(cameras)
        self._wake: Callable[[], None] = lambda: None  # the worker's, once attached
        self.pairing = StampPairing(cameras, [c.camera for c in settings.cameras if c.depth],
                                    timeout=settings.timeout, on_ready=lambda: self._wake())
        self.inputs = DetectionInputs(settings, self.pairing, self.stats, on_error)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.detections_pub = node.create_publisher(Detection2DArray, "~/detections", qos)
        self.landmarks_pub = node.create_publisher(Detection2DArray, "~/detection_landmarks",
                                                   qos)
        self.detections_3d_pub = (node.create_publisher(Detection3DArray, "~/detections_3d", qos)
                                  if any(c.depth for c in settings.cameras) else None)
        self._frame_results: dict[str, FrameResult] = {}  # newest classified frame per camera

    @classmethod
    def for_node(cls, node) -> Optional["DetectionInterface"]:
        """The node's detection path (configure), or None without detection_topics."""
        if not node.settings.detections.enabled:
            return None
        outputs = node.outputs
        interface = cls(node, node.settings.detections, node._decode,
                        node.preprocessor.resize_crop, lambda: node.state == "active",
                        outputs.debug.offer, node._warn_pipeline_error)
        interface.set_live(*live_values(node._accepted_values))  # as accepted so far
        outputs.debug_boxes = interface.wants  # their debug image is drawn from here
        return interface

    @staticmethod
    def release(interface: Optional["DetectionInterface"]) -> None:
        """Cleanup: closes ``interface`` (if any); returns None for the node's attribute."""
        if interface is not None:
            interface.close()
        return None

    def set_live(self, crop_padding: float, max_detections: int) -> None:
        """Live parameters: the next arrays taken use them."""
        self.crop_padding, self.max_detections = float(crop_padding), int(max_detections)

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.pairing.cameras

    def wants(self, camera: str) -> bool:
        return self.pairing.wants(camera)

    def frames_published(self, results: list[FrameResult]) -> None:
        """The worker published these frames: their labels go on the debug image's boxes."""
        for r in results:
            if self.pairing.wants(r.frame.camera):
                self._frame_results[r.frame.camera] = r

    # ---- the worker's companion ------------------------------------------------------------------
    def attach(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # a paired array wakes the worker (no need for a frame to arrive)

    def waiting(self) -> bool:
        self.pairing.expire()
        return self.pairing.has_ready()

    def take(self, label_set) -> Optional[CropWork]:
        """Crops of the arrays paired since the last call (at most two per camera)."""
        parts = []
        for job in self.pairing.take(2 * len(self.cameras)):  # two rounds: catches up
            try:
                batch = self._prepare(job)
            except Exception as exc:  # a bad frame or depth never stops the worker
                self.stats.array_refused(job.camera, FRAME_UNUSABLE, f"{FRAME_UNUSABLE}: {exc}",
                                         len(job.boxes.detections))
                continue
            if batch is None:
                continue
            if batch.boxes:
                parts.append((job, batch))
            else:  # nothing to encode: answered (empty) now
                self._finish(job, batch, np.zeros((0, 0), np.float32), label_set,
                             time.perf_counter())
        return CropWork(self, parts) if parts else None

    def _prepare(self, job: PairedJob) -> Optional[CropBatch]:
        rgb = self._decode(job.camera, job.frame.payload)
        header = job.frame.payload.header
        boxes = input_boxes(job.boxes)
        depth = self._depth_view(job, rgb.shape[1], rgb.shape[0])
        batch = prepare_crops(job.camera, job.stamp_ns, header.frame_id, rgb, boxes,
                              self.crop_padding, self.max_detections, self._preprocess,
                              self.keep_crops, depth)
        if batch.array_problem:
            self.stats.array_refused(job.camera, reason_key(batch.array_problem),
                                     batch.array_problem, len(boxes))
            return None
        return batch

    def _depth_view(self, job: PairedJob, width: int, height: int) -> Optional[DepthView]:
        cam = self.settings.for_camera(job.camera)
        if not cam.depth:
            return None
        if job.depth is None:
            return DepthView(problem=job.depth_problem or pairing_reasons.NO_DEPTH)
        camera, problem = self.inputs.camera_model(job.camera)
        if camera is None:
            return DepthView(problem=problem)
        try:
            msg = job.depth.message
            depth_m = depth_image_metres(msg)
            if depth_m.shape != (height, width):
                raise DetectionInputError(DEPTH_SIZE, f"depth is {depth_m.shape[1]}x"
                                          f"{depth_m.shape[0]}, the frame {width}x{height}")
            camera.check_image(width, height)
        except DetectionInputError as exc:
            self.stats.input_refused(job.camera, exc.reason, str(exc))
            return DepthView(problem=str(exc))
        except Exception as exc:  # a depth message that does not deserialize
            self.stats.input_refused(job.camera, "depth image unreadable", str(exc))
            return DepthView(problem=f"depth image unreadable: {exc}")
        return DepthView(depth_m, camera, msg.header.frame_id)

    def _finish(self, job: PairedJob, batch: CropBatch, rows: np.ndarray, label_set,
                started: float) -> None:
        try:
            result = label_crops(batch, rows, label_set)
            self._publish(job, result)
        except Exception as exc:
            self.stats.array_refused(job.camera, PUBLISH_FAILED, f"{type(exc).__name__}: {exc}",
                                     len(batch.boxes) + len(batch.skipped))
            self._on_error(f"detections of {job.camera} failed: {type(exc).__name__}: {exc}")
            return
        unlocated = [reason_key(b.depth_problem) for b in result.boxes if b.depth_problem]
        located = sum(b.position is not None for b in result.boxes)
        self.stats.array_labelled(job.camera, len(batch.boxes) + len(batch.skipped),
                                  len(result.boxes), [r for _, r in batch.skipped], located,
                                  unlocated, time.perf_counter() - started)
        if self.sink is not None:
            try:
                self.sink(result)
            except Exception as exc:  # the recorder's problem must not stop labelling
                self._on_error(f"detection sink failed: {type(exc).__name__}: {exc}")

    def _publish(self, job: PairedJob, result: FrameDetections) -> None:
        if not (self._active() and self._node.context.ok()):
            return
        header = job.frame.payload.header
        self.detections_pub.publish(detections_message(header, job.boxes, result))
        if result.boxes and result.boxes[0].landmarks:
            self.landmarks_pub.publish(detections_message(header, job.boxes, result, True))
        if self.detections_3d_pub is not None:
            frame_id = batch_frame_id(result)
            self.detections_3d_pub.publish(detections_3d_message(header, frame_id, result))
        frame_result = self._frame_results.get(job.camera)
        same = frame_result is not None and frame_result.frame.payload is job.frame.payload
        self._offer_debug([DetectionsView(
            job.frame, frame_result.classification if same else Classification(()),
            frame_result.landmarks if same else (), result)])

    # ---- lifecycle -------------------------------------------------------------------------------
    def subscribe(self, node, reliability: str, depth: int) -> None:
        self.inputs.subscribe(node, reliability, depth)

    def unsubscribe(self) -> None:
        self.inputs.unsubscribe()

    def close(self) -> None:
        self.unsubscribe()
        for pub in (self.detections_pub, self.landmarks_pub, self.detections_3d_pub):
            if pub is not None:
                self._node.destroy_publisher(pub)


def batch_frame_id(result: FrameDetections) -> Optional[str]:
    """The depth image's frame of the labelled boxes (None when none had depth)."""
    return next((b.frame_id for b in result.boxes if b.frame_id), None)


__all__ = ["CropWork", "DetectionInterface", "DetectionsView", "detection_statuses",
           "encode_in_chunks"]
