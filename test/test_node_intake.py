"""ros.intake: serialized messages in the slots, deserialized only for the frame decoded."""
import platform

import numpy as np
import pytest

from clip_perception.core.allocator import keep_large_buffers
from clip_perception.core.image_decode import FrameDecodeError
from clip_perception.core.pipeline import LatestFrameSlots, PipelineStats
from clip_perception.ros.conversions import ImageConverter
from clip_perception.ros.intake import FrameIntake, SerializedFrame

from node_testing import image_msg, jpeg_msg, pattern_image

pytest.importorskip("rclpy")


class RecordingNode:
    """Stands in for rclpy's Node: records what the intake subscribes to."""

    def __init__(self):
        self.calls = []

    def create_subscription(self, msg_type, topic, callback, qos, callback_group=None,
                            raw=False):
        self.calls.append(dict(msg_type=msg_type, topic=topic, callback=callback, raw=raw,
                               depth=qos.depth))
        return type("Sub", (), {"topic_name": topic})()


def make_intake(topics):
    stats = PipelineStats(topics)
    slots = LatestFrameSlots(topics, stats)
    node = RecordingNode()
    intake = FrameIntake(node, topics, slots, ImageConverter(use_cv_bridge=False),
                         "best_effort", 3)
    return node, slots, stats, intake


def test_callbacks_store_serialized_frames_and_only_the_taken_one_is_deserialized():
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    node, slots, stats, intake = make_intake(["/cam/image_raw", "/cam2/image_raw/compressed"])
    assert [(c["msg_type"], c["raw"], c["depth"]) for c in node.calls] == \
        [(Image, True, 3), (CompressedImage, True, 3)]
    rgb = pattern_image(48, 64, seed=1)
    raw, comp = node.calls[0]["callback"], node.calls[1]["callback"]
    raw(serialize_message(image_msg(rgb, 1_000, "old")))
    raw(serialize_message(image_msg(rgb[::-1].copy(), 2_000_000_123, "new")))
    comp(serialize_message(jpeg_msg(rgb, 5, "jpeg")))
    frames = {f.camera: f for f in slots.take(8)}
    assert stats.snapshot().cameras["/cam/image_raw"].dropped == 1
    newest = frames["/cam/image_raw"].payload
    assert isinstance(newest, SerializedFrame) and newest._message is None  # not yet decoded
    np.testing.assert_array_equal(intake.decode("/cam/image_raw", newest), rgb[::-1])
    header = intake.header(newest)
    assert (header.frame_id, header.stamp.sec, header.stamp.nanosec) == ("new", 2, 123)
    jpeg = intake.decode("/cam2/image_raw/compressed", frames["/cam2/image_raw/compressed"]
                         .payload)
    assert jpeg.shape == (48, 64, 3) and np.abs(jpeg.astype(int) - rgb).mean() < 10


def test_undeserializable_bytes_raise_frame_decode_error_with_the_size():
    from sensor_msgs.msg import Image

    frame = SerializedFrame(b"\x00\x01\x00\x00garbage", Image)
    with pytest.raises(FrameDecodeError, match="11-byte Image"):
        frame.message


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_allocator_thresholds_are_accepted_by_glibc():
    assert keep_large_buffers() is True


def test_intake_spinner_receives_frames_on_its_own_thread_in_the_node_namespace():
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from clip_perception.ros.intake import IntakeSpinner

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("clip_perception", namespace="/robot", context=context)
        spinner = IntakeSpinner(node)
        assert spinner.node.get_fully_qualified_name() == "/robot/clip_perception_intake"
        topics = ["camera/image_raw"]  # relative: resolves in the node's namespace
        slots = LatestFrameSlots(topics, PipelineStats(topics))
        intake = FrameIntake(spinner.node, topics, slots, ImageConverter(use_cv_bridge=False),
                             "reliable", 5)
        spinner.start()
        pub = node.create_publisher(Image, "/robot/camera/image_raw",
                                    QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        rgb = pattern_image(48, 64, seed=2)
        taken = []
        for _ in range(100):  # until discovery matched and one frame arrived (<= 10 s)
            pub.publish(image_msg(rgb, 7, "cam"))
            taken = slots.take(1, timeout=0.1)
            if taken:
                break
        assert taken, "no frame reached the slots through the intake thread"
        np.testing.assert_array_equal(intake.decode(topics[0], taken[0].payload), rgb)
        spinner.close()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


class _RaisingExecutor:
    """spin() raises what rclpy raises when SIGINT lands while the wait set is built."""

    def __init__(self, exc):
        self.exc = exc

    def spin(self):
        raise self.exc


def _context(shut_down: bool):
    import rclpy

    context = rclpy.Context()
    context.init(args=[])
    if shut_down:
        context.shutdown()
    return context


def test_spin_returns_when_the_wait_set_fails_because_sigint_shut_the_context_down():
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import ExternalShutdownException

    from clip_perception.ros.spin import spin_until_shutdown

    context = _context(shut_down=True)
    message = "failed to initialize wait set: the given context is not valid"
    spin_until_shutdown(_RaisingExecutor(RCLError(message)), context)
    spin_until_shutdown(_RaisingExecutor(ExternalShutdownException()), context)


def test_spin_propagates_an_rcl_error_while_the_context_is_still_ok():
    from rclpy._rclpy_pybind11 import RCLError

    from clip_perception.ros.spin import spin_until_shutdown

    context = _context(shut_down=False)
    try:
        with pytest.raises(RCLError, match="something else"):
            spin_until_shutdown(_RaisingExecutor(RCLError("something else")), context)
    finally:
        context.shutdown()


def test_spin_of_a_real_executor_returns_when_its_context_is_shut_down():
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from clip_perception.ros.spin import spin_until_shutdown

    context = _context(shut_down=False)
    node = rclpy.create_node("spin_shutdown_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    errors = []

    def spin():
        try:
            spin_until_shutdown(executor, context)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    context.shutdown()
    thread.join(10)
    assert not thread.is_alive(), "spin did not return after the context was shut down"
    assert not errors, errors
    executor.shutdown()
