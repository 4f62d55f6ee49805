"""The node labelling another detector's boxes, over real rclpy and DDS (the node in this
process, so a test can count its decodes and attach a sink): ~/detections, landmarks, 3D,
bad input counted, live parameters, the debug image."""
import itertools
import math

import numpy as np
import pytest

from detection_testing import (camera_info_msg, depth_msg, detection_array, hypotheses,
                               plane_depth, plane_point)
from node_harness import Harness
from node_testing import Collector, image_msg, pattern_image, stamp_ns, wait_until

NS = "/det"
CAM_A, CAM_B = f"{NS}/cam_a/image_raw", f"{NS}/cam_b/image_raw"
BOXES_A, BOXES_B = f"{NS}/cam_a/boxes", f"{NS}/cam_b/boxes"
DEPTH_A, INFO_A = f"{NS}/cam_a/depth", f"{NS}/cam_a/camera_info"
K = (80.0, 78.0, 47.5, 32.0)  # fx, fy, cx, cy of cam_a's 96x64 frames
_stamps = itertools.count(1_950_000_000 * 10 ** 9, 7_000_000)


class Rig:
    """The harness plus publishers of both cameras, boxes, depth and camera_info, and
    collectors of every output."""

    def __init__(self, harness):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Classification, Detection2DArray, Detection3DArray

        self.h, client = harness, harness.client
        qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.cams = {c: client.create_publisher(Image, c, qos) for c in (CAM_A, CAM_B)}
        self.boxes = {c: client.create_publisher(Detection2DArray, t, qos)
                      for c, t in ((CAM_A, BOXES_A), (CAM_B, BOXES_B))}
        self.depth = client.create_publisher(Image, DEPTH_A, qos)
        self.info = client.create_publisher(CameraInfo, INFO_A, qos)
        self.out = {name: Collector() for name in ("detections", "detection_landmarks",
                                                   "detections_3d", "classification",
                                                   "debug_image")}
        types = {"detections": Detection2DArray, "detection_landmarks": Detection2DArray,
                 "detections_3d": Detection3DArray, "classification": Classification,
                 "debug_image": Image}
        for name, collector in self.out.items():
            client.create_subscription(types[name], f"{harness.name}/{name}", collector, 50)

    def frame(self, camera, rgb, boxes=None, classes=None, depth=None, stamp=None):
        """Publishes a frame (+ its boxes, + its depth); returns the stamp."""
        stamp = next(_stamps) if stamp is None else stamp
        self.cams[camera].publish(image_msg(rgb, stamp, f"{camera}_optical"))
        if depth is not None:
            self.depth.publish(depth if not isinstance(depth, np.ndarray)
                               else depth_msg(depth, stamp))
        if boxes is not None:
            self.boxes[camera].publish(detection_array(stamp, boxes, f"{camera}_optical",
                                                       classes))
        return stamp

    def output(self, name, stamp, timeout=20.0):
        return self.out[name].wait_for(
            lambda msgs: next((m for m in msgs if stamp_ns(m) == stamp), None), timeout)

    def status(self, camera, predicate, timeout=15.0):
        """The newest detections status of ``camera`` satisfying predicate(values dict)."""
        name = f"{self.h.name}: detections {camera}"

        def find(msgs):
            for msg in reversed(msgs):
                for s in msg.status:
                    if s.name == name:
                        values = {kv.key: kv.value for kv in s.values}
                        if predicate(values):
                            return values
            return None
        return self.h.diagnostics.wait_for(find, timeout)


@pytest.fixture(scope="module")
def rig(tiny_model_id):
    from lifecycle_msgs.msg import Transition

    harness = Harness(
        tiny_model_id, NS, image_topics=[CAM_A, CAM_B], detection_topics=[BOXES_A, BOXES_B],
        depth_topics=[DEPTH_A, ""], camera_info_topics=[INFO_A, ""], crop_padding=0.0,
        qos_reliability="reliable", qos_depth=20, labels=["cup", "apple", "tree"], top_k=2,
        landmarks=["a red door", "a tree"], detection_timeout=0.5, max_batch=4)
    try:
        assert harness.transition(Transition.TRANSITION_CONFIGURE)
        assert harness.transition(Transition.TRANSITION_ACTIVATE)
        rig = Rig(harness)
        assert wait_until(lambda: all(p.get_subscription_count() for p in
                                      [*rig.cams.values(), *rig.boxes.values(), rig.depth,
                                       rig.info]), 20)
        yield rig
    finally:
        harness.close()


def scene(seed, height=64, width=96):
    rng = np.random.default_rng(seed)
    base = pattern_image(height, width, seed)
    blob = rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.maximum(base, np.kron(blob, np.ones((4, 4, 1), np.uint8))))


def probabilities(results):
    return {label: score for label, score in results if not label.startswith("detector:")}


def test_whole_frame_box_gets_the_frames_labels_and_probabilities(rig):
    rgb = scene(1)
    stamp = rig.frame(CAM_B, rgb, boxes=[(48, 32, 96, 64)])
    frame = rig.output("classification", stamp)
    boxes = rig.output("detections", stamp)
    assert frame is not None and boxes is not None
    (det,) = boxes.detections
    got = hypotheses(det.results)
    want = [(r.class_id, r.score) for r in frame.results]
    assert [label for label, _ in got] == [label for label, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_square_box_without_padding_gets_what_that_square_gets_as_a_frame(rig):
    rgb = scene(2)
    stamp = rig.frame(CAM_B, rgb, boxes=[(40, 30, 32, 32)])  # pixels x 24..56, y 14..46
    boxes = rig.output("detections", stamp)
    square = rig.frame(CAM_B, np.ascontiguousarray(rgb[14:46, 24:56]))
    frame = rig.output("classification", square)
    assert boxes is not None and frame is not None
    got = hypotheses(boxes.detections[0].results)
    assert [label for label, _ in got] == [r.class_id for r in frame.results]
    assert np.allclose([s for _, s in got], [r.score for r in frame.results], atol=1e-5)


def test_outputs_keep_input_order_bbox_id_header_and_the_detectors_own_class(rig):
    boxes = [(20, 20, 16, 24), (60, 40, 30, 20), (80, 16, 10, 10)]
    stamp = rig.frame(CAM_B, scene(3), boxes=boxes, classes=[("3", 0.0), ("person", 0.9), None])
    out = rig.output("detections", stamp)
    marks = rig.output("detection_landmarks", stamp)
    assert out.header.frame_id == f"{CAM_B}_optical"
    assert [d.id for d in out.detections] == ["det0", "det1", "det2"]
    for d, (cx, cy, w, h) in zip(out.detections, boxes):
        assert (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x,
                d.bbox.size_y) == (cx, cy, w, h)
        assert d.header.stamp == out.header.stamp
    first = hypotheses(out.detections[0].results)
    assert len(first) == 3 and first[2] == ("detector:3", 0.0)  # top-2 labels, then its own
    assert hypotheses(out.detections[1].results)[2] == ("detector:person", pytest.approx(0.9))
    assert len(out.detections[2].results) == 2
    assert sum(s for _, s in first[:2]) <= 1.0 and {lab for lab, _ in first[:2]} <= \
        {"cup", "apple", "tree"}
    assert [[label for label, _ in hypotheses(d.results)] for d in marks.detections] == \
        [["a red door", "a tree"]] * 3
    assert all(-1.0 <= s <= 1.0 for d in marks.detections for _, s in hypotheses(d.results))


def test_bad_boxes_and_arrays_are_counted_and_the_node_keeps_serving(rig):
    nan = float("nan")
    bad = [(-40, 10, 20, 20), (30, 30, 0, 10), (30, 30, 10, -5), (nan, 30, 10, 10),
           (50, 30, 20, 20)]
    stamp = rig.frame(CAM_B, scene(4), boxes=bad)
    out = rig.output("detections", stamp)
    assert [d.id for d in out.detections] == ["det4"]
    other_size = rig.frame(CAM_B, scene(5), boxes=[(150, 110, 40, 40), (10, 10, 8, 8)])
    lost = rig.frame(CAM_B, scene(6))  # the frame that the next array claims never comes:
    rig.boxes[CAM_B].publish(detection_array(lost + 1, [(10, 10, 8, 8)]))
    values = rig.status(CAM_B, lambda v: v.get("arrays lost: no frame with this stamp") and
                        v.get("arrays refused: array for a frame of another size"))
    assert values is not None
    for reason in ("outside the image", "zero or negative size", "non-finite coordinates"):
        assert int(values[f"boxes skipped: {reason}"]) >= 1
    assert int(values["boxes skipped: zero or negative size"]) >= 2
    assert rig.output("detections", other_size, timeout=1.0) is None
    good = rig.frame(CAM_B, scene(7), boxes=[(30, 30, 20, 20)])
    assert rig.output("detections", good) is not None


def test_boxes_get_a_3d_position_from_depth_and_camera_info(rig):
    rig.info.publish(camera_info_msg(K, 96, 64))
    normal = np.array([0.2, -0.1, 1.0]) / np.linalg.norm([0.2, -0.1, 1.0])
    depth = plane_depth(K, normal, 1.5, 96, 64)
    depth[0:8, 80:96] = np.nan  # a box there has no valid depth
    boxes = [(30, 20, 24, 18), (88, 4, 8, 8)]
    out = None
    for _ in range(20):  # camera_info is not latched: resend until it has been seen
        stamp = rig.frame(CAM_A, scene(8), boxes=boxes, depth=depth)
        out = rig.output("detections_3d", stamp)
        if out is not None and not math.isnan(out.detections[0].bbox.center.position.z):
            break
        rig.info.publish(camera_info_msg(K, 96, 64))
    assert out.header.frame_id == "depth_optical"
    p = out.detections[0].bbox.center.position
    truth = plane_point(K, normal, 1.5, 30, 20)
    assert np.linalg.norm([p.x - truth[0], p.y - truth[1], p.z - truth[2]]) < 0.01
    assert out.detections[0].bbox.size.x == pytest.approx(24 * truth[2] / K[0], rel=0.02)
    assert [r.hypothesis.class_id for r in out.detections[0].results] == \
        [r.hypothesis.class_id for r in rig.output("detections", stamp).detections[0].results][:2]
    assert math.isnan(out.detections[1].bbox.center.position.z)
    assert rig.status(CAM_A, lambda v: v.get(
        "boxes without position: not enough valid depth in the box")) is not None


@pytest.mark.parametrize("depth,reason", [
    (np.ones((32, 48), np.float32), "depth of another resolution"),
    (depth_msg(np.ones((64, 96), np.float32), 0, encoding="mono8"),
     "depth of another encoding")])
def test_unusable_depth_is_counted_and_boxes_are_still_labelled(rig, depth, reason):
    rig.info.publish(camera_info_msg(K, 96, 64))
    stamp = next(_stamps)
    if not isinstance(depth, np.ndarray):
        depth.header.stamp.sec, depth.header.stamp.nanosec = divmod(stamp, 10 ** 9)
    else:
        depth = depth_msg(depth, stamp)
    rig.frame(CAM_A, scene(9), boxes=[(30, 30, 20, 20)], depth=depth, stamp=stamp)
    assert rig.output("detections", stamp) is not None
    out = rig.output("detections_3d", stamp)
    assert math.isnan(out.detections[0].bbox.center.position.x)
    assert rig.status(CAM_A, lambda v: v.get(f"inputs refused: {reason}")) is not None


def test_a_frame_with_boxes_is_decoded_once(rig):
    node = rig.h.node
    inner = node._decoders[CAM_B]
    decoded = []

    def counting(msg):
        decoded.append(stamp_ns(msg))
        return inner(msg)
    node._decoders[CAM_B] = counting
    try:
        stamps = [rig.frame(CAM_B, scene(10 + i), boxes=[(40, 30, 20, 20)]) for i in range(4)]
        assert all(rig.output("detections", s) is not None for s in stamps)
        classified = [s for s in stamps if rig.output("classification", s, 2.0) is not None]
    finally:
        node._decoders[CAM_B] = inner
    assert classified, "no frame was classified as well as labelled"
    assert all(decoded.count(s) == 1 for s in stamps), decoded


def test_live_parameters_are_checked_and_used(rig):
    from rclpy.parameter import Parameter

    node = rig.h.node
    (bad,) = node.set_parameters([Parameter("crop_padding", value=1.5)])
    assert not bad.successful and "crop_padding" in bad.reason  # the descriptor's range
    (ok,) = node.set_parameters([Parameter("max_detections_per_frame", value=1)])
    assert ok.successful
    try:
        stamp = rig.frame(CAM_B, scene(20), boxes=[(20, 20, 10, 10), (60, 30, 30, 30)])
        out = rig.output("detections", stamp)
        assert [d.id for d in out.detections] == ["det1"]  # the largest
        assert rig.status(CAM_B, lambda v: v.get(
            "boxes skipped: past max_detections_per_frame")) is not None
    finally:
        node.set_parameters([Parameter("max_detections_per_frame", value=32)])


def test_the_sink_gets_every_frame_detections(rig):
    got = Collector()
    rig.h.node.detections.sink = got
    try:
        stamp = rig.frame(CAM_B, scene(21), boxes=[(30, 30, 20, 20), (70, 40, 16, 16)],
                          classes=[("cup", 0.5), None])
        fd = got.wait_for(lambda items: next((f for f in items if f.stamp_ns == stamp), None),
                          20)
    finally:
        rig.h.node.detections.sink = None
    assert fd.camera == CAM_B and fd.frame_id == f"{CAM_B}_optical" and len(fd.boxes) == 2
    box = fd.boxes[0]
    assert box.source_hypotheses == (("cup", 0.5),) and box.id == "det0"
    assert np.linalg.norm(box.embedding) == pytest.approx(1.0, abs=1e-4)
    assert box.position is None and box.hypotheses[0][0] in ("cup", "apple", "tree")


def test_debug_image_draws_the_boxes(rig):
    assert wait_until(lambda: rig.h.node.outputs.debug_image.get_subscription_count() > 0, 10)
    stamp = rig.frame(CAM_B, np.zeros((64, 96, 3), np.uint8), boxes=[(48, 40, 40, 30)])
    image = None
    for _ in range(10):
        image = rig.output("debug_image", stamp, timeout=2.0)
        if image is not None:
            break
        stamp = rig.frame(CAM_B, np.zeros((64, 96, 3), np.uint8), boxes=[(48, 40, 40, 30)])
    assert image is not None
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(64, 96, 3)
    assert (rgb[55, 40:56] == (60, 230, 60)).all()  # the box's bottom edge (y 25..55)
