"""The detection settings (``detection_topics``, ``depth_topics``, ``camera_info_topics``,
``detection_timeout``; live: ``crop_padding``, ``max_detections_per_frame``) and their checks.

Per-camera lists are aligned with ``image_topics`` (entry i belongs to camera i, ``""`` for a
camera without one) or empty (no camera has one). Depth needs the camera's boxes and its
camera_info.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import SettingError
from .pairing import DEFAULT_TIMEOUT

DEFAULT_CROP_PADDING = 0.1
DEFAULT_MAX_DETECTIONS = 32
MAX_DETECTIONS_LIMIT = 1000
TIMEOUT_RANGE = (0.05, 10.0)


class DetectionSettingsError(SettingError, ValueError):
    """An invalid detection setting (``parameter``, ``reason``)."""


@dataclass(frozen=True)
class CameraDetections:
    camera: str  # the image topic
    boxes: str  # its Detection2DArray topic
    depth: str = ""  # its aligned depth image topic ("" = none)
    camera_info: str = ""  # the CameraInfo of that depth image


@dataclass(frozen=True)
class DetectionSettings:
    cameras: tuple[CameraDetections, ...] = ()  # only cameras with a detection topic
    timeout: float = DEFAULT_TIMEOUT
    crop_padding: float = DEFAULT_CROP_PADDING  # live
    max_detections_per_frame: int = DEFAULT_MAX_DETECTIONS  # live

    @property
    def enabled(self) -> bool:
        return bool(self.cameras)

    def for_camera(self, camera: str) -> CameraDetections:
        return next(c for c in self.cameras if c.camera == camera)

    @classmethod
    def from_values(cls, values: Mapping[str, Any],
                    image_topics: Sequence[str]) -> "DetectionSettings":
        """Raises DetectionSettingsError(parameter, reason)."""
        lists = {name: _aligned(name, values[name], image_topics)
                 for name in ("detection_topics", "depth_topics", "camera_info_topics")}
        boxes, depth, info = (lists[n] for n in ("detection_topics", "depth_topics",
                                                   "camera_info_topics"))
        cameras = []
        for i, camera in enumerate(image_topics):
            if depth[i] and not boxes[i]:
                raise DetectionSettingsError("depth_topics", f"entry {i} ({depth[i]}) is for "
                                             f"camera {camera}, which has no detection topic")
            if bool(depth[i]) != bool(info[i]):
                which = "depth_topics" if info[i] else "camera_info_topics"
                raise DetectionSettingsError(which, f"camera {camera} needs both a depth topic "
                                             "and a camera_info topic, or neither")
            if boxes[i]:
                cameras.append(CameraDetections(camera, boxes[i], depth[i], info[i]))
        used = [t for c in cameras for t in (c.boxes, c.depth, c.camera_info) if t]
        clash = sorted({t for t in used if used.count(t) > 1 or t in image_topics})
        if clash:
            raise DetectionSettingsError("detection_topics", f"topics {clash} are used twice "
                                         "(each camera needs its own)")
        timeout = float(values["detection_timeout"])
        if not TIMEOUT_RANGE[0] <= timeout <= TIMEOUT_RANGE[1]:
            raise DetectionSettingsError("detection_timeout", f"got {timeout:g}, expected "
                                         f"{TIMEOUT_RANGE[0]:g}..{TIMEOUT_RANGE[1]:g} s")
        padding, limit = live_values(values)
        return cls(tuple(cameras), timeout, padding, limit)


def live_values(values: Mapping[str, Any]) -> tuple[float, int]:
    """(crop_padding, max_detections_per_frame), checked."""
    padding = float(values["crop_padding"])
    if not math.isfinite(padding) or not 0.0 <= padding <= 1.0:
        raise DetectionSettingsError("crop_padding", f"got {padding}, expected 0..1 (fraction "
                                     "of the box added on each side)")
    limit = int(values["max_detections_per_frame"])
    if not 1 <= limit <= MAX_DETECTIONS_LIMIT:
        raise DetectionSettingsError("max_detections_per_frame", f"got {limit}, expected "
                                     f"1..{MAX_DETECTIONS_LIMIT}")
    return padding, limit


def _aligned(name: str, value: Sequence[str], image_topics: Sequence[str]) -> list[str]:
    entries = [str(v).strip() for v in value]
    if not entries:
        return [""] * len(image_topics)
    if len(entries) != len(image_topics):
        raise DetectionSettingsError(name, f"has {len(entries)} entries for "
                                     f"{len(image_topics)} image_topics; expected one per "
                                     "camera in the same order ('' for none) or an empty list")
    return entries
