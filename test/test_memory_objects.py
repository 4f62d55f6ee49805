"""Objects in the place memory without ROS: observations from labelled boxes, the merge rule
(closer than a distance AND more alike than a similarity), the exact running mean, objects
without depth, the object collection in Milvus Lite (restart, query by embedding)."""
import math

import numpy as np
import pytest

from object_scenes import OBJECTS, T0, box_at, camera_pose, frame_times, in_camera, texture
from clip_perception.core.detections.results import FrameDetections, LabelledBox
from clip_perception.core.memory import ModelIdentity, Pose, PlaceMemoryError, TopicPoseSource, \
    open_store
from clip_perception.core.memory.object_query import object_record, query_objects
from clip_perception.core.memory.object_recorder import MERGED, NEW, NO_POSE, ObjectRecorder
from clip_perception.core.memory.object_store import open_object_store
from clip_perception.core.memory.thumbnails import decode_thumbnail
from clip_perception.core.memory.objects import (ObjectMergePolicy, ObjectObservation, match,
                                                 merge, new_object)

DIM = 8
MODEL = ModelIdentity("tiny/a", "a" * 64, DIM)
S = 10 ** 9


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def obs(e, position, seen=(0.0, 0.0, 0.0), area=100.0, stamp=0):
    return ObjectObservation(unit(e), None if position is None else np.asarray(position, float),
                             Pose(seen, frame_id="map"), area, stamp, "cam")


def test_merge_keeps_the_exact_mean_and_the_best_view():
    rng = np.random.default_rng(0)
    es = [unit(rng.normal(size=DIM)) for _ in range(4)]
    o = new_object(obs(es[0], (1, 0, 0), area=50, stamp=5))
    for i, e in enumerate(es[1:], 1):
        o = merge(o, obs(e, (1 + i, 0, 0), seen=(i, 0, 0), area=50 + 10 * i * (i != 2),
                         stamp=5 - i if i == 3 else 5 + i))
    mean = np.mean(es, axis=0)
    assert o.embedding == pytest.approx(mean / np.linalg.norm(mean), abs=1e-6)
    assert o.mean_length == pytest.approx(np.linalg.norm(mean), abs=1e-6)
    assert o.position == pytest.approx((2.5, 0, 0)) and o.positioned == 4
    assert o.observations == 4 and (o.first_seen_ns, o.last_seen_ns) == (2, 7)
    assert o.seen_from.position == (3.0, 0.0, 0.0) and o.seen_area == 80  # largest box


def test_match_needs_close_and_alike_and_keeps_depth_apart():
    e, other = unit([1, 0, 0, 0, 0, 0, 0, 0]), unit([0, 1, 0, 0, 0, 0, 0, 0])
    policy = ObjectMergePolicy(distance=0.5, similarity=0.8)
    here = new_object(obs(e, (0, 0, 0)))
    alike_far = new_object(obs(e, (2, 0, 0)))
    near_unlike = new_object(obs(other, (0.1, 0, 0)))
    no_depth = new_object(obs(e, None, seen=(0.1, 0, 0)))
    cands = [alike_far, near_unlike, no_depth, here]
    assert match(obs(unit(e + 0.1 * other), (0.2, 0, 0)), cands, policy) == 3
    assert match(obs(e, (1.0, 0, 0)), cands, policy) is None  # alike, 1 m from both
    assert match(obs(other, (2, 0, 0)), cands, policy) is None  # close to one, unlike it
    # without depth: only objects without a position, by the pose they were seen from
    assert match(obs(e, None, seen=(0.3, 0, 0)), cands, policy) == 2
    assert match(obs(e, None, seen=(0.7, 0, 0)), cands, policy) is None
    with pytest.raises(PlaceMemoryError, match="cosine"):
        ObjectMergePolicy(similarity=1.5)


def scene_frames(rng, depth=True, noise=0.01):
    """FrameDetections of the drive: both objects boxed in every frame, embeddings near each
    object's own, 3D centres from depth with ~1 cm noise."""
    base = {n: unit(rng.normal(size=DIM)) for n in OBJECTS}
    frames = []
    for t in frame_times():
        boxes = []
        for i, name in enumerate(sorted(OBJECTS)):
            pos = in_camera(t, name) + rng.normal(scale=noise, size=3) if depth else None
            boxes.append(LabelledBox(
                index=i, id=name, bbox=box_at(t, name),
                embedding=unit(base[name] + rng.normal(scale=0.05, size=DIM)),
                hypotheses=((name.lower(), 0.9),), source_hypotheses=(), position=pos,
                size=None, frame_id="camera_optical" if depth else "", crop=texture(name)))
        frames.append(FrameDetections("/cam", T0 + int(t * S), "camera_optical", tuple(boxes)))
    return base, frames


def poses_for_drive():
    source = TopicPoseSource("map", max_gap=0.5, horizon=1e9)
    for i in range(-2, 80):
        t = i / 20
        p, q = camera_pose(t)
        source.add(T0 + int(t * S), Pose(p, q, "map"))
    return source


def test_recorder_merges_a_drive_into_two_objects_at_their_places(tmp_path):
    rng = np.random.default_rng(3)
    base, frames = scene_frames(rng)
    keyframes = open_store(str(tmp_path / "mem"), MODEL)
    store = open_object_store(keyframes)
    rec = ObjectRecorder(store, poses_for_drive(), ObjectMergePolicy(0.5, 0.8))
    for f in frames[:3]:
        rec.add([f])
    rec.add(frames[3:])  # several frames in one call merge with each other too
    n = len(frames)
    assert rec.counts[NEW] == 2 and rec.counts[MERGED] == 2 * n - 2, rec.counts
    assert store.count() == 2
    keyframes.close()
    store.close()

    keyframes = open_store(str(tmp_path / "mem"), MODEL)  # a restart keeps the objects
    store = open_object_store(keyframes)
    for name, where in OBJECTS.items():
        result = query_objects(store, base[name][None], k=2)
        best = result.matches[0]
        assert best.object.label == name.lower() and best.object.observations == n
        assert np.linalg.norm(best.object.position - np.array(where)) < 0.02
        assert best.score == pytest.approx(best.scores[0]) and best.score > 0.95
        assert result.matches[1].object.label != name.lower()
        record = object_record(best)
        assert record["observations"] == n and record["frame_id"] == "map"
        assert math.dist((record["x"], record["y"], record["z"]), where) < 0.02
        assert record["first_seen"] == pytest.approx(T0 / S)
    seen = {o.label: o for o in store.iter_objects()}
    assert set(seen) == {"a", "b"}
    assert all(o.thumbnail == "" for o in seen.values())  # listings leave thumbnails out
    thumbs = store.thumbnails([o.object_id for o in seen.values()])  # kept through the merges
    assert len(thumbs) == 2 and all(decode_thumbnail(t)[:2] == b"\xff\xd8" for t in thumbs.values())
    # two texts: one cosine each, the score is their mean
    two = query_objects(store, np.stack([base["A"], base["B"]]), k=1).matches[0]
    assert len(two.scores) == 2 and two.score == pytest.approx(np.mean(two.scores))
    keyframes.close()
    store.close()


def test_objects_without_depth_are_found_by_where_they_were_seen_from(tmp_path):
    rng = np.random.default_rng(4)
    base, frames = scene_frames(rng, depth=False)
    keyframes = open_store(str(tmp_path / "mem"), MODEL)
    store = open_object_store(keyframes)
    # the camera moves 0.16 m between frames: within a 0.5 m merge distance of its last view
    rec = ObjectRecorder(store, poses_for_drive(), ObjectMergePolicy(0.5, 0.8))
    rec.add(frames)
    best = query_objects(store, base["A"][None], k=1).matches[0]
    assert best.object.position is None and best.object.observations > 1
    record = object_record(best)
    assert record["x"] is None and record["seen_from"]["x"] == pytest.approx(
        best.object.seen_from.position[0])
    assert store.count() < 2 * len(frames)  # merged, though never into one (3 m driven)
    keyframes.close()
    store.close()


def test_frames_without_a_pose_wait_then_count(tmp_path):
    rng = np.random.default_rng(5)
    _, frames = scene_frames(rng)
    keyframes = open_store(str(tmp_path / "mem"), MODEL)
    store = open_object_store(keyframes)
    source = TopicPoseSource("map", max_gap=0.5, horizon=1e9)
    rec = ObjectRecorder(store, source)
    rec.add(frames[:2])  # no pose yet at all: both wait
    assert rec.pending == 2 and store.count() == 0
    p, q = camera_pose(0.0)
    source.add(T0 - S // 10, Pose(p, q, "map"))
    source.add(T0 + S // 10, Pose(p, q, "map"))
    rec.add([])  # the first frame is bracketed now; the second still waits
    assert rec.pending == 1 and store.count() == 2
    rec.flush()
    assert rec.counts[NO_POSE] == 2 and "no pose" in rec.last_problem
    keyframes.close()
    store.close()
