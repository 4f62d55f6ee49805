import cv2
import numpy as np
import pytest

from conftest import natural_like_image
from clip_perception.core.image_decode import (SUPPORTED_ENCODINGS, FrameDecodeError,
                                               compressed_to_rgb, raw_to_rgb)

RGB = np.random.default_rng(0).integers(0, 256, size=(6, 9, 3), dtype=np.uint8)


def encode_raw(encoding):
    """Payload for ``encoding`` holding RGB (or its grey level), as a camera driver sends it."""
    grey = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
    return {
        "rgb8": RGB, "bgr8": RGB[..., ::-1], "8UC3": RGB[..., ::-1],
        "rgba8": np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)]),
        "bgra8": np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 255, np.uint8)]),
        "mono8": grey, "8UC1": grey,
        "mono16": grey.astype(np.uint16) * 257, "16UC1": grey.astype(np.uint16) * 257,
    }[encoding]


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_encoding_decodes_to_rgb(encoding):
    arr = np.ascontiguousarray(encode_raw(encoding))
    step = arr.strides[0]
    out = raw_to_rgb(encoding, 6, 9, step, arr.tobytes())
    assert out.shape == (6, 9, 3) and out.dtype == np.uint8
    if arr.ndim == 2:
        grey = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
        np.testing.assert_array_equal(out, np.dstack([grey] * 3))
    else:
        np.testing.assert_array_equal(out, RGB)


def test_row_padding_is_skipped():
    padded = np.zeros((6, 32), np.uint8)
    padded[:, :27] = RGB.reshape(6, 27)
    np.testing.assert_array_equal(raw_to_rgb("rgb8", 6, 9, 32, padded.tobytes()), RGB)


def test_big_endian_16_bit():
    grey = np.arange(54, dtype=np.uint16).reshape(6, 9) * 1000
    out = raw_to_rgb("mono16", 6, 9, 18, grey.astype(">u2").tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(out[..., 0], np.rint(grey * (255 / 65535)).astype(np.uint8))


@pytest.mark.parametrize("args,match", [
    (("yuv422", 6, 9, 18, b"\0" * 108), "unsupported encoding 'yuv422'"),
    (("rgb8", 6, 9, 20, b"\0" * 120), "step 20 is smaller"),
    (("rgb8", 6, 9, 27, b"\0" * 100), "truncated image: 100 bytes"),
    (("rgb8", 0, 0, 0, b""), "empty image"),
])
def test_malformed_raw_frames_raise_with_reason(args, match):
    with pytest.raises(FrameDecodeError, match=match):
        raw_to_rgb(*args)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".jpg", "rgb8; jpeg compressed bgr8")])
def test_compressed_frames_decode(ext, fmt):
    rgb = natural_like_image(48, 64)
    ok, data = cv2.imencode(ext, rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb(fmt, data.tobytes())
    assert out.shape == rgb.shape
    if ext == ".png":
        np.testing.assert_array_equal(out, rgb)
    else:  # lossy, but colour channels must be in RGB order, not BGR
        assert np.abs(out.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", b"\xff\xd8garbage", "corrupt"), ("jpeg", b"", "empty"),
    ("16UC1; compressedDepth png", b"\0" * 20, "compressedDepth"), ("webp2", b"\0", "unsupported"),
])
def test_bad_compressed_frames_raise_with_reason(fmt, data, match):
    with pytest.raises(FrameDecodeError, match=match):
        compressed_to_rgb(fmt, data)
