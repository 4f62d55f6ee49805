"""What labelling another detector's boxes produces: one ``LabelledBox`` per input box, one
``FrameDetections`` per input array (the contract the place memory consumes, CONTRACTS.md).

Pure numpy, no ROS: the node converts these to ``vision_msgs`` (ros/detection_messages.py)
and hands each ``FrameDetections`` to an optional sink (the memory recorder).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class LabelledBox:
    index: int                 # position in the input Detection2DArray
    id: str                    # the input's id, or str(index)
    bbox: tuple[float, float, float, float]   # cx, cy, w, h in source-image pixels
    embedding: np.ndarray      # (D,) float32, L2-normalised crop embedding (same engine)
    hypotheses: tuple[tuple[str, float], ...]  # top-k (label, probability), best first
    source_hypotheses: tuple[tuple[str, float], ...]  # the detector's own (class_id, score)
    position: Optional[np.ndarray]   # (3,) metres, in the depth image's optical frame
    size: Optional[np.ndarray]       # (3,) metres
    frame_id: str              # optical frame of position (depth image header.frame_id)
    crop: Optional[np.ndarray]  # HxWx3 uint8 RGB crop (for thumbnails), may be None
    # Added beyond the contract (defaults, so the contract's constructor calls still work):
    landmarks: tuple[tuple[str, float], ...] = ()  # every landmark in parameter order, cosine
    crop_box: Optional[tuple[int, int, int, int]] = None  # x0, y0, x1, y1 pixels encoded
    depth: Optional[float] = None  # metres: the robust depth the position was made from
    depth_problem: str = ""  # why there is no position ("" when there is one, or no depth)

    @property
    def label(self) -> str:
        """The best label ('unknown' when under score_threshold)."""
        return self.hypotheses[0][0] if self.hypotheses else ""

    @property
    def score(self) -> float:
        return self.hypotheses[0][1] if self.hypotheses else 0.0


@dataclass(frozen=True)
class FrameDetections:
    camera: str                # the image topic
    stamp_ns: int              # source image header.stamp in nanoseconds
    frame_id: str              # source image header.frame_id
    boxes: tuple[LabelledBox, ...]
    # Added beyond the contract:
    label_set_version: int = 0
    skipped: tuple[tuple[int, str], ...] = ()  # (input index, reason) of boxes not labelled
