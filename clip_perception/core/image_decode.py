"""Raw and compressed image payloads -> HxWx3 uint8 RGB, shared by the node and the bag reader.

Works on plain fields (encoding, height, width, step, bytes), so it serves rclpy messages and
rosbags-deserialised messages alike. Every malformed input raises FrameDecodeError saying what
was received and what was expected; nothing here crashes on bad data.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

from .errors import ClipPerceptionError

# encoding -> (channels, numpy dtype, conversion to RGB)
_RAW = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, np.uint8, cv2.COLOR_BGR2RGB),  # OpenCV's default channel order
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2RGB),
    "16UC1": (1, np.uint16, cv2.COLOR_GRAY2RGB),
}
SUPPORTED_ENCODINGS = tuple(_RAW)
SUPPORTED_COMPRESSED = ("jpeg", "jpg", "png")


class FrameDecodeError(ClipPerceptionError, ValueError):
    """A frame cannot be turned into an RGB image; the message says why."""


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data,
               is_bigendian: bool = False) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` payload. 16-bit images are scaled to 8 bits by 255/65535."""
    if encoding not in _RAW:
        raise FrameDecodeError(f"unsupported encoding '{encoding}'; supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)}")
    if height <= 0 or width <= 0:
        raise FrameDecodeError(f"empty image {width}x{height}")
    channels, dtype, conversion = _RAW[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise FrameDecodeError(f"step {step} is smaller than width*channels*bytes = {row_bytes} "
                               f"for {width}x{height} {encoding}")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.view(np.uint8).reshape(-1)
    if buf.size < step * height:
        raise FrameDecodeError(f"truncated image: {buf.size} bytes, expected step*height = "
                               f"{step}*{height} = {step * height} for {width}x{height} {encoding}")
    rows = buf[:step * height].reshape(height, step)[:, :row_bytes]
    img = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    if itemsize > 1:
        if is_bigendian != (sys.byteorder == "big"):
            img = img.byteswap()
        img = np.rint(img.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if channels == 1:
        img = img[:, :, 0]
    if conversion is None:
        return img if img.flags.c_contiguous else np.ascontiguousarray(img)
    return cv2.cvtColor(img, conversion)


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) payload."""
    lowered = (fmt or "").lower()
    if "compresseddepth" in lowered:
        raise FrameDecodeError(f"compressedDepth images are not supported (format '{fmt}')")
    if lowered and not any(k in lowered for k in SUPPORTED_COMPRESSED):
        raise FrameDecodeError(f"unsupported compressed format '{fmt}'; expected jpeg or png")
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview,
                                                             np.ndarray)) else data, dtype=np.uint8)
    if buf.size == 0:
        raise FrameDecodeError("empty compressed image")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise FrameDecodeError(f"corrupt or undecodable compressed image ({buf.size} bytes, "
                               f"format '{fmt}')")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
