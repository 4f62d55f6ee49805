"""ros.conversions: image messages -> RGB (package converter and cv_bridge agree), results ->
vision_msgs."""
import numpy as np
import pytest

from clip_perception.core.image_decode import FrameDecodeError
from clip_perception.core.pipeline import FrameResult, PendingFrame
from clip_perception.core.scoring import Classification, LabelScore
from clip_perception.ros.conversions import (CV_BRIDGE_ENCODINGS, ImageConverter,
                                             is_compressed_topic)
from node_testing import image_msg, jpeg_msg, pattern_image

pytest.importorskip("sensor_msgs.msg")


def _raw(encoding, rgb):
    import cv2
    from sensor_msgs.msg import Image

    conv = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
            "bgra8": cv2.COLOR_RGB2BGRA, "mono8": cv2.COLOR_RGB2GRAY}
    if encoding == "mono16":
        data = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    else:
        data = rgb if conv[encoding] is None else cv2.cvtColor(rgb, conv[encoding])
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                step=data.strides[0])
    msg.data = data.tobytes()
    return msg


def test_topic_kind():
    assert is_compressed_topic("/cam/image_raw/compressed")
    assert not is_compressed_topic("/cam/image_raw")
    assert not is_compressed_topic("/cam/compressed_image")


def test_package_converter_decodes_raw_and_compressed():
    rgb = pattern_image(48, 64)
    conv = ImageConverter(use_cv_bridge=False)
    np.testing.assert_array_equal(conv.image_to_rgb(image_msg(rgb, 1, "f")), rgb)
    np.testing.assert_array_equal(conv.image_to_rgb(image_msg(rgb, 1, "f", "bgr8")), rgb)
    jpeg = conv.compressed_to_rgb(jpeg_msg(rgb, 1, "f"))
    assert jpeg.shape == rgb.shape and np.abs(jpeg.astype(int) - rgb).mean() < 4
    bad = image_msg(rgb, 1, "f")
    bad.encoding = "32FC1"
    with pytest.raises(FrameDecodeError, match="unsupported encoding '32FC1'"):
        conv.image_to_rgb(bad)


def test_rclpy_messages_of_every_new_encoding_decode():
    """rclpy's Image (data is an array.array) through the converter the node builds."""
    import cv2
    from sensor_msgs.msg import Image

    packed = np.random.default_rng(3).integers(0, 256, size=(4, 6, 2), dtype=np.uint8)
    msg = Image(height=4, width=6, encoding="yuv422", step=12)
    msg.data = packed.tobytes()
    conv = ImageConverter(use_cv_bridge=False, scale16=None)
    np.testing.assert_array_equal(conv.image_to_rgb(msg),
                                  cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_UYVY))
    depth = np.array([[0, 500], [1000, 2000]], np.uint16)
    msg = Image(height=2, width=2, encoding="16UC1", step=4)
    msg.data = depth.tobytes()
    assert conv.image_to_rgb(msg)[..., 0].tolist() == [[0, 64], [128, 255]]


def test_oversized_compressed_frame_is_refused():
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, buf = cv2.imencode(".png", np.zeros((100, 100), np.uint8))
    msg = CompressedImage(format="png")
    msg.data = buf.tobytes()
    with pytest.raises(FrameDecodeError, match="exceeds max_image_pixels = 9999"):
        ImageConverter(use_cv_bridge=False, max_pixels=9999).compressed_to_rgb(msg)


def test_cv_bridge_and_package_converter_give_the_same_arrays():
    pytest.importorskip("cv_bridge", reason="cv_bridge is not installed here (ROS installs have it)")
    rgb = pattern_image(48, 64)
    ours, bridge = ImageConverter(use_cv_bridge=False), ImageConverter(use_cv_bridge=True)
    for encoding in CV_BRIDGE_ENCODINGS:
        msg = _raw(encoding, rgb)
        np.testing.assert_array_equal(bridge.image_to_rgb(msg), ours.image_to_rgb(msg),
                                      err_msg=encoding)


def test_results_become_vision_msgs_with_the_source_header():
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")
    from std_msgs.msg import Header

    from clip_perception.ros.conversions import classification_message, landmarks_message

    header = Header(frame_id="cam")
    header.stamp.sec = 7
    result = FrameResult(PendingFrame("/cam", None, 0.0),
                         Classification((LabelScore("unknown", 0.4), LabelScore("cup", 0.4),
                                         LabelScore("apple", 0.35))),
                         (LabelScore("a red door", 0.31), LabelScore("a tree", -0.02)), 3)
    cls = classification_message(result, header)
    assert cls.header.frame_id == "cam" and cls.header.stamp.sec == 7
    assert [(r.class_id, round(r.score, 3)) for r in cls.results] == [
        ("unknown", 0.4), ("cup", 0.4), ("apple", 0.35)]
    lm = landmarks_message(result, header)
    assert [r.class_id for r in lm.results] == ["a red door", "a tree"]
    assert lm.results[1].score == pytest.approx(-0.02)
