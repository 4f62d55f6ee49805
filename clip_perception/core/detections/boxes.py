"""Input boxes: their checks (with a reason for each refusal), which ones are worked on, and the
crop each one is encoded from.

Crop geometry (``crop_region``): the box grows by ``padding`` x its own width/height on each
side, then is squared to the model's aspect (the shorter side grows, centred), then moved to
lie inside the image where it fits and clipped to the image where it does not. Moving instead of
clipping keeps an object at the image edge whole: a clipped, non-square crop would lose part of
the object to the preprocessor's centre crop. A box covering the whole frame therefore gives the
whole frame (the same input as ~/classification), and with ``padding`` 0 a square box inside the
frame gives exactly its own pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from ..errors import ClipPerceptionError

# Reasons (the keys /diagnostics counts by). Each message built from them says what was seen.
NOT_FINITE = "non-finite coordinates"
NOT_POSITIVE = "zero or negative size"
OUTSIDE = "outside the image"
TOO_SMALL = "too small inside the image"
OVER_LIMIT = "past max_detections_per_frame"
WRONG_SIZE = "array for a frame of another size"

MIN_CROP_PIXELS = 2  # a crop narrower than this (after clipping) carries no usable content
# An array whose boxes reach this far past the frame (fraction of its width/height) was made for
# a frame of another size (a detector that resized, or a camera that changed resolution).
SIZE_TOLERANCE = 0.1


class DetectionInputError(ClipPerceptionError, ValueError):
    """An input box, array or depth image that cannot be used; ``reason`` is the counted key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class InputBox:
    """One box of an incoming array, as the detector sent it."""
    index: int  # position in the array
    id: str  # the detector's id, or str(index) when it gave none
    bbox: tuple[float, float, float, float]  # cx, cy, w, h in pixels
    source_hypotheses: tuple[tuple[str, float], ...] = ()  # the detector's (class_id, score)
    theta: float = 0.0  # the detector's box rotation (radians); crops are axis-aligned

    @property
    def area(self) -> float:
        w, h = self.bbox[2], self.bbox[3]
        return w * h if math.isfinite(w * h) else 0.0


def check_box(box: InputBox, width: int, height: int) -> None:
    """Raises DetectionInputError when ``box`` cannot be cropped from a width x height frame."""
    cx, cy, w, h = box.bbox
    if not all(math.isfinite(v) for v in box.bbox):
        raise DetectionInputError(NOT_FINITE, f"box {box.id!r} has cx, cy, w, h = "
                                              f"{cx}, {cy}, {w}, {h}")
    if w <= 0 or h <= 0:
        raise DetectionInputError(NOT_POSITIVE, f"box {box.id!r} is {w} x {h} px")
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise DetectionInputError(OUTSIDE, f"box {box.id!r} spans x {x0:g}..{x1:g}, y "
                                           f"{y0:g}..{y1:g}; the image is {width} x {height}")
    if min(x1, width) - max(x0, 0) < MIN_CROP_PIXELS or \
            min(y1, height) - max(y0, 0) < MIN_CROP_PIXELS:
        raise DetectionInputError(TOO_SMALL, f"box {box.id!r} covers less than "
                                             f"{MIN_CROP_PIXELS} px of the image in x or y")


def check_array_extent(boxes: Sequence[InputBox], width: int, height: int) -> None:
    """Raises DetectionInputError(WRONG_SIZE) when the finite boxes reach well past the frame:
    the array was made for a frame of another size (a box merely overlapping an edge is fine)."""
    reach_x = reach_y = 0.0
    for b in boxes:
        cx, cy, w, h = b.bbox
        if all(math.isfinite(v) for v in b.bbox) and w > 0 and h > 0:
            reach_x, reach_y = max(reach_x, cx + w / 2), max(reach_y, cy + h / 2)
    if reach_x > width * (1 + SIZE_TOLERANCE) or reach_y > height * (1 + SIZE_TOLERANCE):
        raise DetectionInputError(WRONG_SIZE, f"boxes reach x {reach_x:g}, y {reach_y:g} "
                                              f"but the frame is {width} x {height}")


def select_boxes(boxes: Sequence[InputBox], limit: int) -> tuple[list[InputBox], list[InputBox]]:
    """(worked on, left out): the ``limit`` largest boxes (input order kept among them);
    ``limit`` 0 means no limit."""
    if limit <= 0 or len(boxes) <= limit:
        return list(boxes), []
    ranked = sorted(boxes, key=lambda b: (-b.area, b.index))
    keep = {b.index for b in ranked[:limit]}
    return ([b for b in boxes if b.index in keep], [b for b in boxes if b.index not in keep])


def crop_region(bbox: Sequence[float], width: int, height: int, padding: float,
                aspect: float = 1.0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixels (x1, y1 exclusive) to crop for a cx, cy, w, h box.

    ``padding``: fraction of the box added on each side; ``aspect``: the model's input width /
    height (1 for CLIP). The caller checks the box first (``check_box``).
    """
    if padding < 0 or not math.isfinite(padding):
        raise ValueError(f"padding must be >= 0, got {padding}")
    cx, cy, w, h = (float(v) for v in bbox)
    w, h = w * (1 + 2 * padding), h * (1 + 2 * padding)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    x0, x1 = _inside(cx, w, width)
    y0, y1 = _inside(cy, h, height)
    return x0, y0, x1, y1


def _inside(centre: float, extent: float, limit: int) -> tuple[int, int]:
    """An interval of ``extent`` px around ``centre``, moved into [0, limit), clipped if wider."""
    size = min(limit, max(MIN_CROP_PIXELS, int(round(extent))))
    start = int(round(centre - extent / 2.0))
    start = min(max(start, 0), limit - size)
    return start, start + size


def describe_region(region: Optional[tuple[int, int, int, int]]) -> str:
    if region is None:
        return "(none)"
    x0, y0, x1, y1 = region
    return f"x {x0}..{x1}, y {y0}..{y1}"
