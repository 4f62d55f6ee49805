"""Where a box is in 3D: a robust depth inside it and back-projection with the camera matrix.

Depth images are aligned to the colour frame (same size, same pixels): ``16UC1`` in
millimetres or ``32FC1`` in metres; 0, NaN and inf mean "no measurement" and are ignored. A
box's depth is the median of the valid depths in its central part (``CENTRAL_FRACTION`` of its
width and height around its centre: the border of a box is mostly background), and it needs
at least ``MIN_VALID_FRACTION`` of that part valid (and ``MIN_VALID_PIXELS``), else the box
has no position and the reason says how much was valid.

The centre is the box centre (u, v) back-projected at that depth with K,
``X = (u - cx) Z / fx``, ``Y = (v - cy) Z / fy``, in the depth image's optical frame (x right,
y down, z forward). Pixel coordinates are those of K: integer values at pixel centres. The
size is the box extent at that depth (``w Z / fx``, ``h Z / fy``) and, along z, the 10-90 %
spread of the valid depths in the central part (0 for a surface facing the camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .boxes import DetectionInputError

ENCODINGS = {"16UC1": (np.dtype("uint16"), 0.001), "32FC1": (np.dtype("float32"), 1.0)}
CENTRAL_FRACTION = 0.5
MIN_VALID_FRACTION = 0.1
MIN_VALID_PIXELS = 4

# Reasons (the keys /diagnostics counts by)
DEPTH_ENCODING = "depth of another encoding"
DEPTH_SIZE = "depth of another resolution"
DEPTH_DATA = "depth image malformed"
BAD_CAMERA_INFO = "camera_info unusable"
NO_CAMERA_INFO = "no camera_info yet"
NOT_ENOUGH_DEPTH = "not enough valid depth in the box"


def depth_to_metres(encoding: str, height: int, width: int, step: int, data,
                    is_bigendian: bool = False) -> np.ndarray:
    """A depth image's raw fields -> HxW float32 metres (NaN where there is no measurement)."""
    if encoding not in ENCODINGS:
        raise DetectionInputError(DEPTH_ENCODING, f"got '{encoding}', expected 16UC1 (mm) "
                                                  "or 32FC1 (m)")
    dtype, scale = ENCODINGS[encoding]
    dtype = dtype.newbyteorder(">" if is_bigendian else "<")
    row = width * dtype.itemsize
    buf = np.frombuffer(data, np.uint8)
    if height <= 0 or width <= 0 or step < row or buf.size < step * height:
        raise DetectionInputError(DEPTH_DATA, f"{width}x{height} {encoding}, step {step}, "
                                              f"{buf.size} bytes (need step >= {row} and "
                                              f"step*height = {step * height} bytes)")
    rows = buf[:step * height].reshape(height, step)[:, :row]
    values = rows.copy().view(dtype).reshape(height, width).astype(np.float32)
    if scale != 1.0:
        values *= scale
    values[~np.isfinite(values) | (values <= 0)] = np.nan
    return values


@dataclass(frozen=True)
class CameraModel:
    """The pinhole part of a CameraInfo: K (fx, fy, cx, cy) for a width x height image."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0  # 0: not given (then not checked)
    height: int = 0

    @classmethod
    def from_k(cls, k: Sequence[float], width: int = 0, height: int = 0) -> "CameraModel":
        """``k``: the 9 row-major entries of CameraInfo.k."""
        k = [float(v) for v in k]
        if len(k) != 9 or not all(math.isfinite(v) for v in k):
            raise DetectionInputError(BAD_CAMERA_INFO, f"K must be 9 finite numbers, got {k}")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        if fx <= 0 or fy <= 0:
            raise DetectionInputError(BAD_CAMERA_INFO, f"K has fx {fx:g}, fy {fy:g}: not "
                                                       "calibrated (expected > 0)")
        return cls(fx, fy, cx, cy, int(width), int(height))

    def check_image(self, width: int, height: int) -> None:
        if self.width and self.height and (self.width, self.height) != (width, height):
            raise DetectionInputError(DEPTH_SIZE, f"camera_info is for {self.width}x"
                                                  f"{self.height}, the depth image is "
                                                  f"{width}x{height}")

    def back_project(self, u: float, v: float, z: float) -> np.ndarray:
        return np.array([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z],
                        np.float64)


@dataclass(frozen=True)
class BoxDepth:
    """A box's robust depth (metres) and spread, or why there is none (``problem``)."""
    depth: Optional[float]
    spread: float = 0.0
    valid: int = 0
    total: int = 0
    problem: str = ""


def central_region(bbox: Sequence[float], width: int, height: int,
                   fraction: float = CENTRAL_FRACTION) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel indices (exclusive ends) of the central part of a cx, cy, w, h
    box, symmetric about its centre where the image allows, at least one pixel."""
    cx, cy, w, h = (float(v) for v in bbox)
    half_w, half_h = max(0.0, w * fraction / 2.0), max(0.0, h * fraction / 2.0)
    x0, x1 = int(math.ceil(cx - half_w)), int(math.floor(cx + half_w)) + 1
    y0, y1 = int(math.ceil(cy - half_h)), int(math.floor(cy + half_h)) + 1
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))
    return x0, y0, x1, y1


def box_depth(depth_m: np.ndarray, bbox: Sequence[float], fraction: float = CENTRAL_FRACTION,
              min_valid_fraction: float = MIN_VALID_FRACTION,
              min_valid_pixels: int = MIN_VALID_PIXELS) -> BoxDepth:
    """Median of the valid depths in the box's central part (``depth_to_metres`` output)."""
    height, width = depth_m.shape
    x0, y0, x1, y1 = central_region(bbox, width, height, fraction)
    patch = depth_m[y0:y1, x0:x1]
    values = patch[np.isfinite(patch)]
    total = int(patch.size)
    if total == 0 or values.size < max(min_valid_pixels, min_valid_fraction * total):
        return BoxDepth(None, 0.0, int(values.size), total,
                        f"{NOT_ENOUGH_DEPTH}: {values.size} of {total} pixels valid in x "
                        f"{x0}..{x1}, y {y0}..{y1} (need {min_valid_fraction:.0%} and "
                        f"{min_valid_pixels})")
    low, median, high = np.percentile(values, (10, 50, 90))
    return BoxDepth(float(median), float(high - low), int(values.size), total)


def locate(camera: CameraModel, bbox: Sequence[float],
           depth: BoxDepth) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(position, size) in metres in the optical frame, (None, None) without a depth."""
    if depth.depth is None:
        return None, None
    cx, cy, w, h = (float(v) for v in bbox)
    z = depth.depth
    size = np.array([w * z / camera.fx, h * z / camera.fy, depth.spread], np.float64)
    return camera.back_project(cx, cy, z), size
