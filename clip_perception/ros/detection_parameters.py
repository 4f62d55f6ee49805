"""The parameter rows of boxes from another detector (issue 21); checks in
core.detections.settings, called by ros.parameters.validate."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..core.detections.settings import (DEFAULT_CROP_PADDING, DEFAULT_MAX_DETECTIONS,
                                        MAX_DETECTIONS_LIMIT, TIMEOUT_RANGE, DetectionSettings,
                                        DetectionSettingsError, live_values)
from ..core.detections.pairing import DEFAULT_TIMEOUT


def detection_parameters(param_spec, string_array: str, double: str, integer: str) -> tuple:
    """The rows, built with ros.parameters' ParamSpec and type names (no import cycle)."""
    per_camera = "one per image_topics entry, same order ('' = none), or empty"
    return (
        param_spec("detection_topics", string_array, [],
                   "vision_msgs/Detection2DArray topic of another detector's boxes on each "
                   "camera's frames; each array is paired with the frame of the same "
                   "header.stamp and its boxes are labelled on ~/detections.", False,
                   per_camera),
        param_spec("depth_topics", string_array, [],
                   "Aligned depth image per camera (16UC1 mm or 32FC1 m, the colour frame's "
                   "size), paired by stamp; with camera_info_topics gives ~/detections_3d.",
                   False, per_camera + "; needs the camera's detection and camera_info topics"),
        param_spec("camera_info_topics", string_array, [],
                   "sensor_msgs/CameraInfo of each depth image (its K back-projects box "
                   "centres).", False, per_camera),
        param_spec("detection_timeout", double, DEFAULT_TIMEOUT,
                   "How long (s) an array waits for its frame (and depth), and how long frames "
                   "are kept for arrays still to come; past it the array is counted as lost.",
                   False, f"{TIMEOUT_RANGE[0]:g}..{TIMEOUT_RANGE[1]:g}",
                   float_range=TIMEOUT_RANGE),
        param_spec("crop_padding", double, DEFAULT_CROP_PADDING,
                   "Fraction of a box's width/height added on each side before its crop is "
                   "squared to the model's input and encoded.", True, "0..1",
                   float_range=(0.0, 1.0)),
        param_spec("max_detections_per_frame", integer, DEFAULT_MAX_DETECTIONS,
                   "Most boxes labelled per array (the largest first); the others are counted "
                   "in /diagnostics.", True, f"1..{MAX_DETECTIONS_LIMIT}",
                   int_range=(1, MAX_DETECTIONS_LIMIT)),
    )


def validate_detections(values: Mapping[str, Any], image_topics: Sequence[str],
                        error) -> DetectionSettings:
    """DetectionSettings, or ``error(parameter, reason)`` (ros.parameters.ParameterError)."""
    try:
        return DetectionSettings.from_values(values, image_topics)
    except DetectionSettingsError as exc:
        raise error(exc.parameter, exc.reason) from None


def validate_live(values: Mapping[str, Any], error) -> tuple[float, int]:
    try:
        return live_values(values)
    except DetectionSettingsError as exc:
        raise error(exc.parameter, exc.reason) from None
