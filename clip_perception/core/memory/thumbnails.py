"""Small JPEG thumbnails of keyframes, as base64 text (fits a Milvus VARCHAR field)."""
from __future__ import annotations

import base64

import cv2
import numpy as np

from .errors import PlaceMemoryError

DEFAULT_SIZE = 128  # px, longer side
QUALITIES = (80, 60, 40)  # lowered until the thumbnail fits the store's field


def encode_thumbnail(rgb: np.ndarray, size: int = DEFAULT_SIZE, max_chars: int = 65535) -> str:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise PlaceMemoryError(f"thumbnail needs an HxWx3 uint8 RGB image, got {rgb.shape} "
                               f"{rgb.dtype}")
    if size <= 0:
        return ""
    h, w = rgb.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for quality in QUALITIES:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise PlaceMemoryError(f"OpenCV could not JPEG-encode a {rgb.shape} thumbnail")
        text = base64.b64encode(buf.tobytes()).decode("ascii")
        if len(text) <= max_chars:
            return text
    raise PlaceMemoryError(f"a {rgb.shape[1]}x{rgb.shape[0]} thumbnail does not fit "
                           f"{max_chars} characters even at JPEG quality {QUALITIES[-1]}")


def decode_thumbnail(text: str) -> bytes:
    """The JPEG file bytes of a stored thumbnail."""
    return base64.b64decode(text.encode("ascii"))
