"""core/detections without ROS: box checks, crop geometry, stamp pairing, depth and 3D."""
import math

import numpy as np
import pytest

from clip_perception.core.detections import boxes as B
from clip_perception.core.detections import pairing as P
from clip_perception.core.detections.boxes import DetectionInputError, InputBox, crop_region
from clip_perception.core.detections.depth import (CameraModel, box_depth, central_region,
                                                   depth_to_metres, locate)
from clip_perception.core.detections.labelling import (DepthView, encode_in_chunks,
                                                       label_crops, prepare_crops)
from clip_perception.core.scoring import UNKNOWN_LABEL, ZeroShotClassifier
from clip_perception.core.vocabulary import LabelSetSpec
from clip_perception.core.vocabulary.snapshot import LabelSet
from detection_testing import plane_depth, plane_point


def box(cx, cy, w, h, index=0, id=None):
    return InputBox(index, id if id is not None else str(index), (cx, cy, w, h))


# ---- crop geometry ---------------------------------------------------------------------------
def test_square_box_without_padding_is_its_own_pixels():
    assert crop_region((200, 150, 128, 128), 640, 480, 0.0) == (136, 86, 264, 214)


def test_padding_is_a_fraction_of_the_box_on_each_side_then_squared():
    # 100 x 50 box, 10 % each side -> 120 x 60, squared to 120 x 120 around the centre
    assert crop_region((300, 200, 100, 50), 640, 480, 0.1) == (240, 140, 360, 260)


def test_tall_box_squared_to_the_model_aspect():
    x0, y0, x1, y1 = crop_region((300, 240, 40, 160), 640, 480, 0.0)
    assert (x1 - x0, y1 - y0) == (160, 160) and (x0 + x1) / 2 == 300


def test_box_at_the_edge_is_moved_inside_not_cut():
    # a 50x200 box at the left edge: the 200 px square starts at 0 and keeps all of the box
    x0, y0, x1, y1 = crop_region((35, 240, 50, 200), 640, 480, 0.0)
    assert (x0, x1) == (0, 200) and (y1 - y0) == 200
    assert x0 <= 35 - 25 and x1 >= 35 + 25


def test_whole_frame_box_gives_the_whole_frame_for_any_padding():
    for padding in (0.0, 0.1, 0.5):
        assert crop_region((320, 240, 640, 480), 640, 480, padding) == (0, 0, 640, 480)


def test_square_larger_than_the_image_is_clipped():
    x0, y0, x1, y1 = crop_region((320, 240, 300, 470), 640, 480, 0.1)
    assert (y0, y1) == (0, 480)  # 564 px tall square clipped to the image height
    assert x1 - x0 == round(470 * 1.2) and abs((x0 + x1) / 2 - 320) <= 1


def test_negative_padding_is_refused():
    with pytest.raises(ValueError, match="padding"):
        crop_region((10, 10, 5, 5), 64, 64, -0.1)


# ---- box checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("bbox,reason", [
    ((float("nan"), 10, 5, 5), B.NOT_FINITE), ((10, 10, float("inf"), 5), B.NOT_FINITE),
    ((10, 10, 0, 5), B.NOT_POSITIVE), ((10, 10, 5, -3), B.NOT_POSITIVE),
    ((-50, 10, 20, 20), B.OUTSIDE), ((10, 700, 20, 20), B.OUTSIDE),
    ((642, 10, 2, 20), B.OUTSIDE), ((639.8, 10, 1.0, 20), B.TOO_SMALL)])
def test_bad_boxes_are_refused_with_their_reason(bbox, reason):
    with pytest.raises(DetectionInputError) as info:
        B.check_box(InputBox(3, "car-1", bbox), 640, 480)
    assert info.value.reason == reason and "car-1" in str(info.value)


def test_box_partly_outside_is_accepted():
    B.check_box(box(5, 5, 40, 40), 640, 480)


def test_array_for_a_frame_of_another_size_is_refused():
    boxes = [box(100, 100, 50, 50, 0), box(1100, 800, 100, 100, 1)]  # made on a 1280x960 frame
    with pytest.raises(DetectionInputError) as info:
        B.check_array_extent(boxes, 640, 480)
    assert info.value.reason == B.WRONG_SIZE and "640 x 480" in str(info.value)
    B.check_array_extent([box(630, 470, 40, 40)], 640, 480)  # over the edge a little: fine


def test_largest_boxes_first_input_order_kept():
    boxes = [box(50, 50, 10, 10, 0), box(50, 50, 40, 40, 1), box(50, 50, 20, 20, 2),
             box(50, 50, 30, 30, 3)]
    kept, over = B.select_boxes(boxes, 2)
    assert [b.index for b in kept] == [1, 3] and [b.index for b in over] == [0, 2]
    assert B.select_boxes(boxes, 0) == (boxes, [])


# ---- stamp pairing ---------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def pairing(**kw):
    clock = Clock()
    ready = []
    p = P.StampPairing(["cam"], clock=clock, on_ready=lambda: ready.append(1), **kw)
    return p, clock, ready


def test_array_after_its_frame_pairs_by_exact_stamp():
    p, clock, ready = pairing()
    p.put_frame("cam", 10, "f10")
    p.put_frame("cam", 11, "f11")
    clock.t += 0.05
    p.put_boxes("cam", 10, "b10")
    (job,) = p.take(4)
    assert (job.frame, job.boxes, job.stamp_ns) == ("f10", "b10", 10) and ready
    assert job.waited == pytest.approx(0.05)
    assert p.take(4) == []


def test_array_before_its_frame_waits_for_it():
    p, clock, ready = pairing()
    p.put_boxes("cam", 20, "b20")
    assert p.take(4) == [] and not ready
    p.put_frame("cam", 21, "f21")  # another stamp: no pairing
    assert p.take(4) == []
    p.put_frame("cam", 20, "f20")
    assert [j.frame for j in p.take(4)] == ["f20"]


def test_frame_that_never_came_is_counted_and_a_late_one_noted():
    p, clock, _ = pairing(timeout=0.5)
    p.put_boxes("cam", 30, "b30")
    clock.t += 0.6
    p.expire()
    counts = p.counts()["cam"]
    assert counts.lost == {P.NEVER_CAME: 1} and P.NEVER_CAME in counts.last_problem
    p.put_frame("cam", 30, "f30")  # now it comes: too late, noted, nothing labelled
    assert p.counts()["cam"].notes == {P.LATE_FRAME: 1}
    assert p.take(4) == []


def test_array_whose_frame_left_the_buffer():
    p, clock, _ = pairing(timeout=0.5)
    p.put_frame("cam", 40, "f40")
    clock.t += 0.6
    p.put_frame("cam", 41, "f41")  # expires f40
    p.put_boxes("cam", 40, "b40")
    assert p.counts()["cam"].lost == {P.FRAME_EXPIRED: 1} and p.take(4) == []


def test_frame_buffer_is_bounded_by_count():
    p, clock, _ = pairing(max_frames=3)
    for stamp in range(10):
        p.put_frame("cam", stamp, f"f{stamp}")
    p.put_boxes("cam", 2, "b2")
    assert p.counts()["cam"].lost == {P.FRAME_EXPIRED: 1}
    p.put_boxes("cam", 8, "b8")
    assert [j.frame for j in p.take(4)] == ["f8"]


def test_duplicate_stamp_is_refused():
    p, clock, _ = pairing()
    p.put_boxes("cam", 5, "a")
    p.put_boxes("cam", 5, "b")
    assert p.counts()["cam"].lost == {P.DUPLICATE: 1}


def test_ready_jobs_are_bounded_oldest_dropped_as_busy():
    p, clock, _ = pairing(max_ready=2)
    for stamp in range(3):
        p.put_frame("cam", stamp, f"f{stamp}")
        p.put_boxes("cam", stamp, f"b{stamp}")
    assert [j.stamp_ns for j in p.take(8)] == [1, 2]
    assert p.counts()["cam"].lost == {P.BUSY: 1}


def test_depth_is_waited_for_then_given_up():
    clock = Clock()
    p = P.StampPairing(["cam"], depth_cameras=["cam"], timeout=0.5, clock=clock)
    p.put_frame("cam", 1, "f1")
    p.put_boxes("cam", 1, "b1")
    assert p.take(4) == []  # waits for depth
    p.put_depth("cam", 1, "d1")
    (job,) = p.take(4)
    assert job.depth == "d1" and job.depth_problem == ""
    p.put_frame("cam", 2, "f2")
    p.put_boxes("cam", 2, "b2")
    clock.t += 0.6
    (job,) = p.take(4)
    assert job.frame == "f2" and job.depth is None and P.NO_DEPTH in job.depth_problem
    assert p.counts()["cam"].notes == {P.NO_DEPTH: 1} and not p.counts()["cam"].lost


def test_cameras_take_turns():
    clock = Clock()
    p = P.StampPairing(["a", "b"], clock=clock)
    for cam in "ab":
        for stamp in range(3):
            p.put_frame(cam, stamp, cam)
            p.put_boxes(cam, stamp, cam)
    assert [j.camera for j in p.take(4)] == ["a", "b", "a", "b"]


# ---- depth -----------------------------------------------------------------------------------
def test_16uc1_is_millimetres_and_zero_is_invalid():
    raw = np.array([[0, 1500], [2000, 65535]], "<u2")
    m = depth_to_metres("16UC1", 2, 2, 4, raw.tobytes())
    assert math.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.5) and m[1, 0] == 2.0


def test_32fc1_is_metres_nan_inf_and_negative_invalid_big_endian_and_padded_rows():
    raw = np.array([[1.25, np.nan, 0.0], [np.inf, -1.0, 3.0]], ">f4")
    padded = np.zeros((2, 16), np.uint8)
    padded[:, :12] = raw.view(np.uint8).reshape(2, 12)
    m = depth_to_metres("32FC1", 2, 3, 16, padded.tobytes(), is_bigendian=True)
    assert m[0, 0] == 1.25 and m[1, 2] == 3.0
    assert np.isnan(m[[0, 0, 1, 1], [1, 2, 0, 1]]).all()


@pytest.mark.parametrize("encoding,step,size,reason", [
    ("mono8", 2, 4, "depth of another encoding"), ("16UC1", 2, 8, "depth image malformed"),
    ("16UC1", 4, 6, "depth image malformed")])
def test_bad_depth_images_are_refused(encoding, step, size, reason):
    with pytest.raises(DetectionInputError) as info:
        depth_to_metres(encoding, 2, 2, step, bytes(size))
    assert info.value.reason == reason


def test_camera_matrix_checks():
    with pytest.raises(DetectionInputError, match="not calibrated"):
        CameraModel.from_k([0] * 9)
    with pytest.raises(DetectionInputError, match="9 finite"):
        CameraModel.from_k([1, 0, 2])
    cam = CameraModel.from_k([500, 0, 320, 0, 500, 240, 0, 0, 1], 640, 480)
    with pytest.raises(DetectionInputError, match="another resolution"):
        cam.check_image(320, 240)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_box_centre_on_a_tilted_plane_within_a_centimetre(encoding):
    k = (525.0, 520.0, 319.5, 241.0)
    normal = np.array([0.3, -0.2, 1.0])
    normal /= np.linalg.norm(normal)
    z = plane_depth(k, normal, 2.0, 640, 480)  # a wall ~2 m away, turned and tilted
    if encoding == "16UC1":
        data = np.round(z * 1000).astype("<u2").tobytes()
        step = 640 * 2
    else:
        data = z.astype("<f4").tobytes()
        step = 640 * 4
    depth = depth_to_metres(encoding, 480, 640, step, data)
    depth[200:260, 400:420] = np.nan  # holes (zero depth) inside the box are ignored
    camera = CameraModel.from_k([k[0], 0, k[2], 0, k[1], k[3], 0, 0, 1], 640, 480)
    bbox = (430.0, 180.0, 120.0, 90.0)
    robust = box_depth(depth, bbox)
    position, size = locate(camera, bbox, robust)
    truth = plane_point(k, normal, 2.0, bbox[0], bbox[1])
    assert np.linalg.norm(position - truth) < 0.01
    assert size[0] == pytest.approx(120 * truth[2] / k[0], rel=0.01)
    assert size[1] == pytest.approx(90 * truth[2] / k[1], rel=0.01)
    assert 0 < size[2] < 0.5  # the tilted wall's depth spread across the central part


def test_not_enough_valid_depth_gives_no_position():
    depth = np.full((100, 100), np.nan, np.float32)
    depth[50, 50] = 1.0
    robust = box_depth(depth, (50, 50, 40, 40))
    assert robust.depth is None and "1 of" in robust.problem
    camera = CameraModel.from_k([100, 0, 50, 0, 100, 50, 0, 0, 1])
    assert locate(camera, (50, 50, 40, 40), robust) == (None, None)


def test_central_region_is_symmetric_and_inside():
    assert central_region((50, 50, 40, 20), 100, 100) == (40, 45, 61, 56)
    assert central_region((1, 1, 40, 40), 100, 100)[:2] == (0, 0)


# ---- labelling -------------------------------------------------------------------------------
def label_set(threshold=0.0, landmarks=()):
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(3 + len(landmarks), 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    spec = LabelSetSpec.from_values(labels=["cup", "door", "tree"], prompt_templates=["{}"],
                                    top_k=2, score_threshold=threshold, landmarks=landmarks)
    return LabelSet(spec, 3, ZeroShotClassifier(spec.labels, emb[:3], 1.0), emb[3:])


def test_crops_and_labels_per_box_as_frames_are_scored():
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [box(40, 40, 30, 30, 0, "a"), box(float("nan"), 1, 1, 1, 1, "b"),
             box(100, 60, 50, 20, 2, "c"), box(10, 10, 4, 4, 3, "d")]
    sizes = []

    def preprocess(region):
        sizes.append(region.shape[:2])
        return region[:4, :4]
    batch = prepare_crops("cam", 7, "optical", rgb, boxes, 0.0, 2, preprocess,
                          keep_thumbnails=True)
    assert [b.id for b in batch.boxes] == ["a", "c"]
    assert batch.skipped == [(1, B.NOT_FINITE), (3, B.OVER_LIMIT)]
    assert sizes == [(30, 30), (50, 50)]
    assert np.array_equal(batch.thumbnails[0], rgb[25:55, 25:55])
    ls = label_set(threshold=0.9, landmarks=("a red door",))
    emb = np.random.default_rng(2).normal(size=(2, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    out = label_crops(batch, emb, ls)
    expected = ls.classify(emb)
    assert out.camera == "cam" and out.stamp_ns == 7 and out.label_set_version == 3
    for labelled, cls, row in zip(out.boxes, expected, emb):
        assert labelled.hypotheses == tuple((h.label, h.score) for h in cls.hypotheses)
        assert labelled.position is None and labelled.frame_id == ""
        assert labelled.landmarks[0][1] == pytest.approx(float(row @ ls.landmark_embeddings[0]))
    assert out.boxes[0].label == UNKNOWN_LABEL  # the unknown rule applies to boxes too
    assert out.boxes[1].crop_box == (75, 35, 125, 85)


def test_array_of_another_size_skips_every_box():
    rgb = np.zeros((48, 64, 3), np.uint8)
    batch = prepare_crops("cam", 1, "f", rgb, [box(10, 10, 5, 5, 0), box(120, 90, 10, 10, 1)],
                          0.1, 8, lambda r: r)
    assert batch.boxes == [] and "another size" in batch.array_problem
    assert batch.skipped == [(0, B.WRONG_SIZE), (1, B.WRONG_SIZE)]


def test_depth_view_without_depth_keeps_its_reason():
    rgb = np.zeros((48, 64, 3), np.uint8)
    view = DepthView(problem="no camera_info yet")
    batch = prepare_crops("cam", 1, "f", rgb, [box(10, 10, 8, 8)], 0.0, 8, lambda r: r,
                          depth=view)
    out = label_crops(batch, np.ones((1, 8), np.float32) / math.sqrt(8), label_set())
    assert out.boxes[0].position is None and out.boxes[0].depth_problem == "no camera_info yet"


def test_encode_in_chunks_never_exceeds_the_engine_batch():
    calls = []

    def encode(batch):
        calls.append(batch.shape[0])
        return batch[:, :2] * 2
    run = encode_in_chunks(encode, 4)
    out = run(np.arange(20.0).reshape(10, 2))
    assert calls == [4, 4, 2] and np.array_equal(out, np.arange(20.0).reshape(10, 2) * 2)
