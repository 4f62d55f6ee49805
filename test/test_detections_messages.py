"""Detection messages (fields as upstream vision_msgs 4.x), their conversions, the detection
parameters' checks, the worker's companion hook and the debug drawing: no DDS."""
import math

import numpy as np
import pytest

from clip_perception.core.detections.results import FrameDetections, LabelledBox
from clip_perception.core.pipeline import LatestFrameSlots, PerceptionWorker, PipelineStats
from clip_perception.core.scoring import Classification
from clip_perception.ros import detection_messages as M
from clip_perception.ros.debug_image import render
from clip_perception.ros.parameters import PARAMETERS, ParameterError, validate
from detection_testing import detection_array

UPSTREAM_FIELDS = {  # ros-perception/vision_msgs 4.1.1, vision_msgs/msg/*.msg
    "Point2D": {"x": "double", "y": "double"},
    "Pose2D": {"position": "vision_msgs/Point2D", "theta": "double"},
    "BoundingBox2D": {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
    "ObjectHypothesisWithPose": {"hypothesis": "vision_msgs/ObjectHypothesis",
                                 "pose": "geometry_msgs/PoseWithCovariance"},
    "Detection2D": {"header": "std_msgs/Header",
                    "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox2D", "id": "string"},
    "Detection2DArray": {"header": "std_msgs/Header",
                         "detections": "sequence<vision_msgs/Detection2D>"},
    "BoundingBox3D": {"center": "geometry_msgs/Pose", "size": "geometry_msgs/Vector3"},
    "Detection3D": {"header": "std_msgs/Header",
                    "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox3D", "id": "string"},
    "Detection3DArray": {"header": "std_msgs/Header",
                         "detections": "sequence<vision_msgs/Detection3D>"},
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_FIELDS))
def test_detection_messages_match_upstream_and_round_trip(name):
    import vision_msgs.msg as vm
    from rclpy.serialization import deserialize_message, serialize_message

    cls = getattr(vm, name)
    assert cls.get_fields_and_field_types() == UPSTREAM_FIELDS[name]
    assert deserialize_message(serialize_message(cls()), cls) == cls()


def test_stamp_read_from_the_serialized_frame_without_deserializing():
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    for cls in (Image, CompressedImage):
        msg = cls()
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_800_000_123, 456_789_012
        msg.header.frame_id = "cam"
        data = serialize_message(msg)
        assert M.serialized_stamp_ns(data, cls) == 1_800_000_123_456_789_012
    with pytest.raises(ValueError, match="not a plain CDR"):
        M.serialized_stamp_ns(b"\x00\x03" + bytes(20))


def test_input_boxes_keep_id_order_and_the_detectors_hypotheses():
    msg = detection_array(5, [(10, 20, 30, 40), (1, 2, 3, 4)], classes=[("3", 0.0), None])
    msg.detections[1].id = ""
    boxes = M.input_boxes(msg)
    assert [(b.index, b.id, b.bbox) for b in boxes] == [(0, "det0", (10, 20, 30, 40)),
                                                        (1, "1", (1, 2, 3, 4))]
    assert boxes[0].source_hypotheses == (("3", 0.0),) and boxes[1].source_hypotheses == ()


def labelled(index, position=None, landmarks=()):
    return LabelledBox(index, f"det{index}", (10.0, 20.0, 30.0, 40.0), np.ones(4, np.float32),
                       (("cup", 0.75), ("tree", 0.2)), (), position,
                       None if position is None else np.array([0.1, 0.2, 0.0]),
                       "depth_optical" if position is not None else "", None, landmarks)


def test_output_messages_copy_the_input_bbox_and_add_labels_then_the_detectors_own():
    source = detection_array(9, [(10, 20, 30, 40), (50, 50, 5, 5)], classes=[None, ("7", 0.3)])
    source.detections[1].bbox.center.theta = 0.25
    result = FrameDetections("/cam", 9, "cam", (labelled(1, landmarks=(("a door", 0.31),)),))
    msg = M.detections_message(source.header, source, result)
    (d,) = msg.detections
    assert d.bbox == source.detections[1].bbox and d.id == "det1"
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in d.results] == \
        [("cup", 0.75), ("tree", 0.2), ("detector:7", pytest.approx(0.3))]
    marks = M.detections_message(source.header, source, result, landmarks=True)
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in marks.detections[0].results] \
        == [("a door", pytest.approx(0.31))]


def test_3d_message_has_nan_without_a_position_and_the_depth_frame():
    source = detection_array(9, [(10, 20, 30, 40), (50, 50, 5, 5)])
    result = FrameDetections("/cam", 9, "cam",
                             (labelled(0, np.array([1.0, 2.0, 3.0])), labelled(1)))
    msg = M.detections_3d_message(source.header, "depth_optical", result)
    assert msg.header.frame_id == "depth_optical" and msg.header.stamp == source.header.stamp
    a, b = msg.detections
    assert (a.bbox.center.position.x, a.bbox.center.position.z, a.bbox.size.y) == (1, 3, 0.2)
    assert a.bbox.center.orientation.w == 1.0
    assert math.isnan(b.bbox.center.position.x) and math.isnan(b.bbox.size.x)


def defaults(**overrides):
    values = {p.name: p.default for p in PARAMETERS}
    values.update(overrides)
    return values


@pytest.mark.parametrize("overrides,parameter,fragment", [
    (dict(detection_topics=["/a", "/b"]), "detection_topics", "2 entries for 1 image_topics"),
    (dict(depth_topics=["/d"], camera_info_topics=["/i"]), "depth_topics", "no detection topic"),
    (dict(detection_topics=["/b"], depth_topics=["/d"]), "camera_info_topics", "both"),
    (dict(detection_topics=["/b"], camera_info_topics=["/i"]), "depth_topics", "both"),
    (dict(detection_topics=["/camera/image_raw"]), "detection_topics", "used twice"),
    (dict(detection_timeout=0.0), "detection_timeout", "expected 0.05..10"),
    (dict(crop_padding=float("nan")), "crop_padding", "got nan, expected 0..1"),
    (dict(crop_padding=-0.1), "crop_padding", "expected 0..1"),
    (dict(max_detections_per_frame=0), "max_detections_per_frame", "expected 1..1000"),
])
def test_invalid_detection_parameters_are_rejected_with_a_reason(overrides, parameter,
                                                                 fragment):
    with pytest.raises(ParameterError) as info:
        validate(defaults(**overrides))
    assert info.value.parameter == parameter and fragment in str(info.value)


def test_detection_parameters_per_camera():
    startup, live = validate(defaults(
        image_topics=["/a", "/b"], detection_topics=["", "/b/boxes"],
        depth_topics=["", "/b/depth"], camera_info_topics=["", "/b/info"], crop_padding=0.25))
    (cam,) = startup.detections.cameras
    assert (cam.camera, cam.boxes, cam.depth, cam.camera_info) == \
        ("/b", "/b/boxes", "/b/depth", "/b/info")
    assert live.crop_padding == 0.25 and not validate(defaults())[0].detections.enabled


class Companion:
    def __init__(self, rows):
        self.rows, self.finished, self.failed = rows, [], []

    def waiting(self):
        return bool(self.rows)

    def take(self, label_set):
        if not self.rows:
            return None
        batch, self.rows = self, []
        batch.inputs = [np.full((2, 2, 3), 7, np.uint8)] * batch.count
        return batch

    def finish(self, embeddings, label_set):
        self.finished.append(embeddings)

    def fail(self, reason):
        self.failed.append(reason)

    def attach(self, wake):
        self.wake = wake


class LabelSetStub:
    labels, landmarks, landmark_key, version = ("a",), (), (), 1
    spec = type("Spec", (), {"landmark_smoothing": 0.0})()

    def classify(self, emb):
        return [Classification(())] * len(emb)

    def landmark_cosines(self, emb):
        return np.zeros((len(emb), 0))


def worker(companion, encode):
    stats = PipelineStats(["cam"])
    slots = LatestFrameSlots(["cam"], stats)
    published = []
    w = PerceptionWorker(slots, stats, LabelSetStub, lambda c, p: p,
                         lambda rgb: rgb, lambda b: b.astype(np.float32).reshape(len(b), -1),
                         encode, published.append, companion=companion)
    return w, published, stats


def test_worker_encodes_companion_rows_in_the_same_call_after_the_frames():
    calls = []

    def encode(batch):
        calls.append(batch.shape[0])
        return batch[:, :3]
    companion = Companion(rows=[1])
    companion.count = 3
    w, published, stats = worker(companion, encode)
    frame = type("F", (), {"camera": "cam", "payload": np.zeros((2, 2, 3), np.uint8),
                           "received": 0.0})()
    w.process([frame])
    assert calls == [4] and len(published) == 1
    assert len(companion.finished) == 1 and (companion.finished[0] == 7).all()
    companion.rows, companion.count = [1], 2  # no frame waiting: the crops alone
    w.process([])
    assert calls == [4, 2] and len(published) == 1 and companion.finished[1].shape[0] == 2
    assert stats.snapshot().cameras["cam"].processed == 1


def test_worker_reports_a_failed_encode_to_the_companion():
    def encode(batch):
        raise RuntimeError("engine fault")
    companion = Companion(rows=[1])
    companion.count = 1
    w, published, _ = worker(companion, encode)
    w.process([])
    assert companion.failed and "engine fault" in companion.failed[0] and not published


def test_debug_render_draws_each_box_with_its_top_label():
    from clip_perception.ros.detections import DetectionsView

    view = DetectionsView(None, Classification(()), (),
                          FrameDetections("/cam", 1, "cam", (labelled(0),)))
    out = render(np.zeros((80, 120, 3), np.uint8), view)
    # box (10, 20, 30, 40): x -5..25 clipped to 0..25, y 0..40
    assert (out[40, 5:20] == (60, 230, 60)).all() and (out[60:, 30:] == 0).all()


def test_wake_ends_a_waiting_take_without_a_frame():
    import threading
    import time

    slots = LatestFrameSlots(["cam"], PipelineStats(["cam"]))
    got = []
    thread = threading.Thread(target=lambda: got.append(slots.take(4, timeout=60)))
    thread.start()
    start = time.monotonic()
    slots.wake()
    thread.join(30)
    assert got == [[]] and time.monotonic() - start < 30
    slots.put("cam", "frame")
    assert [f.payload for f in slots.take(4, timeout=1)] == ["frame"]  # and serves frames
