"""Raw and compressed image payloads -> HxWx3 uint8 RGB, shared by the node and the bag reader.

Works on plain fields (encoding, height, width, step, bytes), so it serves rclpy messages and
rosbags-deserialised messages alike. Raw encodings (colour orders, bayer, yuv422, 16-bit) are
converted by rosbags-image (pure Python over OpenCV); this module adds what it leaves to the
caller: row padding (``step``), geometry checks, the 16-bit -> 8-bit scale and the generic
``8UC1``/``8UC3``/``16UC1`` names. Every malformed input raises FrameDecodeError saying what was
received and what was expected; nothing here crashes on bad data.
"""
from __future__ import annotations

import io
import warnings
from types import SimpleNamespace
from typing import Optional

import cv2
import numpy as np
from PIL import Image as PILImage
from rosbags.image import ImageError, image_to_cvimage
from rosbags.image.image import to_cvtype

from .errors import ClipPerceptionError

# Generic OpenCV type names carry no channel order: read as OpenCV's defaults (grey, BGR).
_GENERIC_AS = {"8UC1": "mono8", "8UC3": "bgr8", "16UC1": "mono16"}
_EIGHT_BIT = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8",
              "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
              "yuv422", "uyvy", "yuv422_yuy2", "yuyv")
_SIXTEEN_BIT = ("rgb16", "bgr16", "rgba16", "bgra16", "mono16",
                "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16")
SUPPORTED_ENCODINGS = _EIGHT_BIT + _SIXTEEN_BIT + tuple(_GENERIC_AS)
SUPPORTED_COMPRESSED = ("jpeg", "jpg", "png")
# 16-bit frames: "auto" maps the frame's own maximum to 255 (depth images, 12-bit sensors in
# 16-bit containers); a number is the value that maps to 255 (4095 for 12-bit, 65535 = full).
SCALE16_AUTO = "auto"
FULL_SCALE16 = 65535
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class FrameDecodeError(ClipPerceptionError, ValueError):
    """A frame cannot be turned into an RGB image; the message says why."""


def parse_scale16(value) -> Optional[float]:
    """``"auto"`` -> None (per frame), a number in 1..65535 -> that float; else ValueError."""
    text = str(value).strip().lower()
    if text == SCALE16_AUTO:
        return None
    try:
        peak = float(text)
    except ValueError:
        peak = float("nan")
    if not 1.0 <= peak <= FULL_SCALE16:  # also false for nan
        raise ValueError(f"got '{value}', expected 'auto' or a number in 1..{FULL_SCALE16} "
                         f"(the 16-bit value shown as white, e.g. 4095 for 12-bit sensors)")
    return peak


def scale16_to_8(img: np.ndarray, peak: Optional[float]) -> np.ndarray:
    """uint16 -> uint8: ``peak`` (or the image's own maximum when None) becomes 255."""
    if peak is None:
        peak = float(img.max()) if img.size else 0.0
        if peak == 0.0:
            return np.zeros(img.shape, np.uint8)
    out = img.astype(np.float32) * np.float32(255.0 / peak)
    return np.rint(np.minimum(out, 255.0, out=out), out=out).astype(np.uint8)


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data,
               is_bigendian: bool = False, scale16=FULL_SCALE16) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` payload; ``scale16``: see ``parse_scale16`` (or None)."""
    if encoding not in SUPPORTED_ENCODINGS:
        raise FrameDecodeError(f"unsupported encoding '{encoding}'; supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)}")
    if height <= 0 or width <= 0:
        raise FrameDecodeError(f"empty image {width}x{height}")
    encoding = _GENERIC_AS.get(encoding, encoding)
    _, _, typestr, channels = to_cvtype(encoding)
    row_bytes = width * channels * np.dtype(typestr).itemsize
    if step < row_bytes:
        raise FrameDecodeError(f"step {step} is smaller than width*bytes per pixel = {row_bytes} "
                               f"for {width}x{height} {encoding}")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.view(np.uint8).reshape(-1)
    if buf.size < step * height:
        raise FrameDecodeError(f"truncated image: {buf.size} bytes, expected step*height = "
                               f"{step}*{height} = {step * height} for {width}x{height} {encoding}")
    rows = buf[:step * height].reshape(height, step)
    if step != row_bytes:  # rosbags-image reads rows back to back: drop the padding first
        rows = np.ascontiguousarray(rows[:, :row_bytes])
    msg = SimpleNamespace(encoding=encoding, height=height, width=width, step=row_bytes,
                          data=rows.reshape(-1), is_bigendian=bool(is_bigendian))
    try:
        img = image_to_cvimage(msg)  # native layout, byte order fixed
        if encoding in _SIXTEEN_BIT:
            peak = scale16 if scale16 is None else float(scale16)
            img, encoding = scale16_to_8(img, peak), encoding.replace("16", "8")
        if encoding == "rgb8":
            return img if img.flags.c_contiguous else np.ascontiguousarray(img)
        msg.encoding, msg.data, msg.is_bigendian = encoding, img.reshape(-1), False
        return np.ascontiguousarray(image_to_cvimage(msg, "rgb8"))
    except (ImageError, cv2.error) as exc:
        raise FrameDecodeError(f"cannot convert {width}x{height} {encoding} to rgb8: {exc}") \
            from exc


def compressed_size(data) -> tuple[int, int]:
    """(width, height) from a JPEG/PNG header, without decoding the pixels."""
    with warnings.catch_warnings():
        # Our own limit decides; PIL's bomb warning/error would only repeat it.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(io.BytesIO(data)) as im:
                return im.size
        except PILImage.DecompressionBombError as exc:
            raise FrameDecodeError(f"compressed image too large: {exc}") from exc
        except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
            raise FrameDecodeError(f"corrupt or undecodable compressed image "
                                   f"({len(data)} bytes): {exc}") from exc


def compressed_to_rgb(fmt: str, data, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) payload of at most ``max_pixels``.

    Decoded with cv2.imdecode(IMREAD_COLOR), which also turns grey, alpha and 16-bit PNGs into
    8-bit colour (rosbags-image's compressed path returns those unconverted).
    """
    lowered = (fmt or "").lower()
    if "compresseddepth" in lowered:
        raise FrameDecodeError(f"compressedDepth images are not supported (format '{fmt}')")
    if lowered and not any(k in lowered for k in SUPPORTED_COMPRESSED):
        raise FrameDecodeError(f"unsupported compressed format '{fmt}'; expected jpeg or png")
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview,
                                                             np.ndarray)) else data, dtype=np.uint8)
    if buf.size == 0:
        raise FrameDecodeError("empty compressed image")
    width, height = compressed_size(buf)
    if width * height > max_pixels:
        raise FrameDecodeError(f"compressed image of {width}x{height} = {width * height} pixels "
                               f"exceeds max_image_pixels = {max_pixels}; not decoded")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise FrameDecodeError(f"corrupt or undecodable compressed image ({buf.size} bytes, "
                               f"format '{fmt}')")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
