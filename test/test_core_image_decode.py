import cv2
import numpy as np
import pytest

from conftest import natural_like_image
from clip_perception.core import image_decode
from clip_perception.core.image_decode import (FrameDecodeError, compressed_to_rgb,
                                               parse_scale16, raw_to_rgb)

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
        "rgb16": RGB.astype(np.uint16) * 257, "bgr16": RGB[..., ::-1].astype(np.uint16) * 257,
    }[encoding]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "mono8", "8UC1",
                                      "mono16", "16UC1", "rgb16", "bgr16"])
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
    (("32FC1", 6, 9, 36, b"\0" * 216), "unsupported encoding '32FC1'"),
    (("yuv422", 6, 9, 18, b"\0" * 108), "cannot convert 9x6 yuv422"),  # odd width
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


def _mosaic_rggb(rgb):
    """The RGGB bayer mosaic a camera would record of ``rgb`` (R at even row, even column)."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    out[0::2, 0::2], out[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    out[1::2, 0::2], out[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    return out


@pytest.mark.parametrize("encoding,dtype,scale", [("bayer_rggb8", np.uint8, 1),
                                                  ("bayer_rggb16", np.uint16, 257)])
def test_bayer_rggb_demosaics_to_the_scene_colours(encoding, dtype, scale):
    scene = np.zeros((8, 10, 3), np.uint8)
    scene[..., 0], scene[..., 1], scene[..., 2] = 200, 100, 30  # orange everywhere
    mosaic = _mosaic_rggb(scene).astype(dtype) * scale
    out = raw_to_rgb(encoding, 8, 10, mosaic.strides[0], mosaic.tobytes())
    inner = out[2:-2, 2:-2].reshape(-1, 3)  # border pixels have fewer neighbours
    np.testing.assert_array_equal(inner, np.tile([200, 100, 30], (len(inner), 1)))


@pytest.mark.parametrize("encoding,code", [("yuv422", cv2.COLOR_YUV2RGB_UYVY),
                                           ("uyvy", cv2.COLOR_YUV2RGB_UYVY),
                                           ("yuv422_yuy2", cv2.COLOR_YUV2RGB_YUYV),
                                           ("yuyv", cv2.COLOR_YUV2RGB_YUYV)])
def test_yuv422_variants_match_opencv(encoding, code):
    packed = np.random.default_rng(1).integers(0, 256, size=(6, 8, 2), dtype=np.uint8)
    out = raw_to_rgb(encoding, 6, 8, 16, packed.tobytes())
    np.testing.assert_array_equal(out, cv2.cvtColor(packed, code))


def test_yuv422_with_row_padding():
    packed = np.random.default_rng(2).integers(0, 256, size=(6, 8, 2), dtype=np.uint8)
    padded = np.zeros((6, 20), np.uint8)
    padded[:, :16] = packed.reshape(6, 16)
    np.testing.assert_array_equal(raw_to_rgb("yuv422", 6, 8, 20, padded.tobytes()),
                                  cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_UYVY))


def test_16_bit_scale_auto_uses_the_frames_own_maximum():
    twelve_bit = np.arange(54, dtype=np.uint16).reshape(6, 9) * 40  # max 2120 of 4095
    out = raw_to_rgb("16UC1", 6, 9, 18, twelve_bit.tobytes(), scale16=None)
    np.testing.assert_array_equal(out[..., 0], np.rint(twelve_bit * (255 / 2120)).astype(np.uint8))
    black = raw_to_rgb("mono16", 6, 9, 18, np.zeros((6, 9), np.uint16).tobytes(), scale16=None)
    assert not black.any()


def test_16_bit_fixed_scale_clips_above_it():
    values = np.array([[0, 1000, 4095, 5000]], np.uint16)
    out = raw_to_rgb("mono16", 1, 4, 8, values.tobytes(), scale16=parse_scale16("4095"))
    assert out[0, :, 0].tolist() == [0, 62, 255, 255]


@pytest.mark.parametrize("text,expected", [("auto", None), (" AUTO ", None), ("4095", 4095.0),
                                           ("65535", 65535.0)])
def test_parse_scale16(text, expected):
    assert parse_scale16(text) == expected


@pytest.mark.parametrize("text", ["0", "70000", "bright", "", "nan"])
def test_parse_scale16_rejects_with_reason(text):
    with pytest.raises(ValueError, match="expected 'auto' or a number in 1..65535"):
        parse_scale16(text)


def test_png_beyond_max_pixels_is_rejected_before_decoding(monkeypatch):
    ok, data = cv2.imencode(".png", np.zeros((300, 400), np.uint8))  # compresses to ~1 KB
    def no_decode(*args):
        raise AssertionError("cv2.imdecode must not run on an oversized image")
    monkeypatch.setattr(image_decode.cv2, "imdecode", no_decode)
    with pytest.raises(FrameDecodeError, match=r"400x300 = 120000 pixels exceeds "
                                               r"max_image_pixels = 100000; not decoded"):
        compressed_to_rgb("png", data.tobytes(), max_pixels=100_000)


def test_png_within_max_pixels_decodes():
    ok, data = cv2.imencode(".png", np.full((30, 40), 7, np.uint8))
    out = compressed_to_rgb("png", data.tobytes(), max_pixels=1200)
    assert out.shape == (30, 40, 3) and (out == 7).all()
