"""Labelled boxes from a bag (what ``build_memory --boxes-topic`` adds): a detector's arrays
paired with the camera frame of the same stamp (and the aligned depth image of that stamp,
with the newest camera_info), cropped and located exactly as the node does (core/detections:
``prepare_crops``, robust box depth, back-projection through K), encoded with the node's
engine, as ``FrameDetections`` for the object recorder.

Messages come in record order, so an array may come before or after its frame: frames, depth
and arrays wait (at most ``WAIT_NS`` of bag time and ``KEEP`` of each) until their partners
are there; an array whose frame never comes is counted with the reason.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..detections.boxes import DetectionInputError
from ..detections.depth import CameraModel, box_depth, depth_to_metres, locate
from ..detections.labelling import DepthView, prepare_crops
from ..detections.results import FrameDetections, LabelledBox

WAIT_NS = 2 * 10 ** 9  # bag time an array waits for its frame (and depth)
KEEP = 64  # frames, depth images and arrays kept waiting, each
NO_FRAME, NO_DEPTH = "arrays without a frame of their stamp", "arrays without depth of their stamp"


@dataclass(frozen=True)
class BoxTopics:
    boxes: str  # vision_msgs/Detection2DArray
    depth: str = ""  # aligned depth image (16UC1 mm / 32FC1 m), "" = none
    camera_info: str = ""  # its sensor_msgs/CameraInfo
    padding: float = 0.1  # as the node's crop_padding
    limit: int = 32  # as max_detections_per_frame


class BagBoxes:
    """``input_boxes(msg) -> [InputBox]`` reads an array (ros/detection_messages.input_boxes);
    ``encode(list of RGB crops) -> (N, D)`` is the node's image encoder."""

    def __init__(self, camera: str, topics: BoxTopics,
                 input_boxes: Callable[[object], Sequence],
                 encode: Callable[[list[np.ndarray]], np.ndarray]):
        self.camera, self.topics = camera, topics
        self._input_boxes, self._encode = input_boxes, encode
        self._frames: OrderedDict[int, tuple[str, np.ndarray]] = OrderedDict()
        self._depth: OrderedDict[int, object] = OrderedDict()
        self._arrays: OrderedDict[int, object] = OrderedDict()
        self._camera_model: Optional[CameraModel] = None
        self._info_problem = "no camera_info yet"
        self.counts: Counter = Counter()
        self.arrays = 0

    # ---- messages in ---------------------------------------------------------------------------
    def frame(self, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> list[FrameDetections]:
        self._put(self._frames, stamp_ns, (frame_id, rgb))
        return self._ready()

    def boxes(self, stamp_ns: int, msg) -> list[FrameDetections]:
        self.arrays += 1
        self._put(self._arrays, stamp_ns, msg)
        return self._ready()

    def depth(self, stamp_ns: int, msg) -> list[FrameDetections]:
        self._put(self._depth, stamp_ns, msg)
        return self._ready()

    def camera_info(self, msg) -> None:
        try:
            self._camera_model = CameraModel.from_k(list(msg.k), int(msg.width), int(msg.height))
        except DetectionInputError as exc:
            self._camera_model, self._info_problem = None, str(exc)

    def finish(self) -> list[FrameDetections]:
        """End of the bag: arrays still waiting are counted (depth-less ones are labelled)."""
        out = self._ready(final=True)
        self.counts[NO_FRAME] += len(self._arrays)
        self._arrays.clear()
        return out

    # ---- pairing -------------------------------------------------------------------------------
    @staticmethod
    def _put(buffer: OrderedDict, stamp_ns: int, item) -> None:
        buffer[stamp_ns] = item
        while len(buffer) > KEEP:
            buffer.popitem(last=False)

    def _ready(self, final: bool = False) -> list[FrameDetections]:
        newest = max([*self._frames, *self._arrays, *self._depth], default=0)
        out = []
        for stamp in list(self._arrays):
            frame = self._frames.get(stamp)
            depth = self._depth.get(stamp) if self.topics.depth else None
            expired = final or newest - stamp > WAIT_NS
            if frame is None:
                if expired:
                    self.counts[NO_FRAME] += 1
                    del self._arrays[stamp]
                continue
            if self.topics.depth and depth is None and not expired:
                continue
            if self.topics.depth and depth is None:
                self.counts[NO_DEPTH] += 1
            out.append(self._label(stamp, frame, self._arrays.pop(stamp), depth))
        return out

    def _depth_view(self, msg) -> Optional[DepthView]:
        if not self.topics.depth:
            return None
        if msg is None:
            return DepthView(problem="no depth image with this stamp")
        if self._camera_model is None:
            return DepthView(frame_id=msg.header.frame_id, problem=self._info_problem)
        try:
            depth_m = depth_to_metres(msg.encoding, int(msg.height), int(msg.width),
                                      int(msg.step), msg.data, bool(msg.is_bigendian))
            self._camera_model.check_image(depth_m.shape[1], depth_m.shape[0])
        except DetectionInputError as exc:
            return DepthView(frame_id=msg.header.frame_id, problem=str(exc))
        return DepthView(depth_m, self._camera_model, msg.header.frame_id)

    def _label(self, stamp: int, frame, array, depth_msg) -> FrameDetections:
        frame_id, rgb = frame
        view = self._depth_view(depth_msg)
        batch = prepare_crops(self.camera, stamp, frame_id, rgb, self._input_boxes(array),
                              self.topics.padding, self.topics.limit, lambda region: region,
                              keep_thumbnails=True, depth=view)
        for _, reason in batch.skipped:
            self.counts[f"boxes refused: {reason}"] += 1
        if not batch.boxes:
            return FrameDetections(self.camera, stamp, frame_id, ())
        embeddings = np.asarray(self._encode(batch.inputs), np.float32)
        boxes = []
        for box, region, crop, emb in zip(batch.boxes, batch.regions, batch.thumbnails,
                                          embeddings):
            position = size = None
            if view is not None and view.depth_m is not None:
                robust = box_depth(view.depth_m, box.bbox)
                position, size = locate(view.camera, box.bbox, robust)
            if view is not None and position is None:
                self.counts["boxes without depth"] += 1
            boxes.append(LabelledBox(
                index=box.index, id=box.id, bbox=tuple(float(v) for v in box.bbox),
                embedding=emb, hypotheses=(), source_hypotheses=box.source_hypotheses,
                position=position, size=size, frame_id=view.frame_id if view else "",
                crop=crop, crop_box=region))
        return FrameDetections(self.camera, stamp, frame_id, tuple(boxes))
