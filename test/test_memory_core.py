"""Place memory core without ROS: poses, interpolation, tf chains, keyframe rule, places, and
the Milvus Lite store on disk (restart, other model refused)."""
import math
import re

import numpy as np
import pytest

from clip_perception.core.memory import (Keyframe, KeyframePolicy, KeyframeRecorder,
                                         KeyframeSelector, KeyframeStore, ModelIdentity,
                                         ModelMismatch, Observation, PlaceMemoryError, Pose,
                                         PoseBuffer, PoseNotYetKnown, PoseUnavailable,
                                         StoreError, TopicPoseSource, TransformTree,
                                         group_places, interpolate, query_places, slerp, yaw)
from clip_perception.core.memory.recorder import NO_POSE, NOT_KEY, STORED
from clip_perception.core.memory.thumbnails import decode_thumbnail, encode_thumbnail

S = 1_000_000_000


def yaw_q(theta):
    return (0.0, 0.0, math.sin(theta / 2), math.cos(theta / 2))


def unit(rng, dim=8):
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


# ---- geometry ----------------------------------------------------------------------------------
def test_slerp_halfway_is_half_the_angle_and_takes_the_short_way():
    q = slerp(yaw_q(0.0), yaw_q(1.0), 0.5)
    assert yaw(q) == pytest.approx(0.5)
    # -q is the same rotation as q: still the short arc from 170 deg to -170 deg (via 180)
    a, b = yaw_q(math.radians(170)), tuple(-c for c in yaw_q(math.radians(-170)))
    assert abs(yaw(slerp(a, b, 0.5))) == pytest.approx(math.pi, abs=1e-6)


def test_interpolate_is_linear_in_position():
    a = Pose((0, 0, 0), yaw_q(0), "map")
    b = Pose((2, 4, 0), yaw_q(0.8), "map")
    p = interpolate(a, b, 0.25)
    assert p.position == pytest.approx((0.5, 1.0, 0.0))
    assert p.yaw == pytest.approx(0.2)


def test_compose_and_inverse():
    a = Pose((1, 0, 0), yaw_q(math.pi / 2))
    b = Pose((1, 0, 0))
    assert a.compose(b).position == pytest.approx((1, 1, 0))
    ident = a.compose(a.inverse())
    assert ident.position == pytest.approx((0, 0, 0), abs=1e-12)
    assert ident.angle_to(Pose((0, 0, 0))) == pytest.approx(0, abs=1e-6)


def test_bad_quaternion_is_refused():
    with pytest.raises(ValueError, match="no direction"):
        Pose((0, 0, 0), (0, 0, 0, 0))


# ---- pose buffer -------------------------------------------------------------------------------
def test_pose_buffer_interpolates_at_the_stamp_and_refuses_gaps():
    buf = PoseBuffer()
    buf.add(10 * S, Pose((0, 0, 0), yaw_q(0), "map"))
    buf.add(11 * S, Pose((1, 0, 0), yaw_q(0.5), "map"))
    buf.add(13 * S, Pose((3, 0, 0), yaw_q(0.5), "map"))
    p = buf.lookup(10 * S + S // 2, max_gap=1.0)
    assert p.position[0] == pytest.approx(0.5) and p.yaw == pytest.approx(0.25)
    assert buf.lookup(11 * S, max_gap=0.1).position[0] == 1.0  # exact sample, no gap needed
    with pytest.raises(PoseUnavailable, match="2.000 s gap"):
        buf.lookup(12 * S, max_gap=1.0)
    with pytest.raises(PoseNotYetKnown, match="newer than the newest"):
        buf.lookup(14 * S, max_gap=1.0)
    with pytest.raises(PoseUnavailable, match="older than the oldest"):
        buf.lookup(9 * S, max_gap=1.0)


def test_pose_buffer_accepts_late_samples_and_forgets_old_ones():
    buf = PoseBuffer(horizon=2.0)
    for t in (3, 1, 2):
        buf.add(t * S, Pose((t, 0, 0)))
    assert buf.span() == (1 * S, 3 * S)
    buf.add(5 * S, Pose((5, 0, 0)))
    assert buf.span() == (3 * S, 5 * S)


def test_topic_source_refuses_another_frame():
    src = TopicPoseSource("map", max_gap=0.5)
    with pytest.raises(PoseUnavailable, match="frame 'odom', expected the fixed frame 'map'"):
        src.add(S, Pose((0, 0, 0), frame_id="odom"))


# ---- transform tree (bags with /tf) ------------------------------------------------------------
def test_transform_tree_chains_dynamic_and_static_edges():
    tree = TransformTree("map", max_gap=3.0)
    tree.add("map", "odom", 0, Pose((10, 0, 0)), static=True)
    tree.add("odom", "base_link", 0, Pose((0, 0, 0), yaw_q(0)), static=False)
    tree.add("odom", "base_link", 2 * S, Pose((2, 0, 0), yaw_q(math.pi / 2)), static=False)
    tree.add("/base_link", "camera", 0, Pose((0.5, 0, 0)), static=True)  # leading / ignored
    p = tree.pose_at("camera", 1 * S)  # base at (11, 0) facing 45 deg, camera 0.5 m ahead
    c = 0.5 * math.cos(math.pi / 4)
    assert p.position == pytest.approx((11 + c, c, 0))
    assert p.yaw == pytest.approx(math.pi / 4) and p.frame_id == "map"
    # the fixed frame below the common ancestor works too (odom <- map inverted)
    inv = TransformTree("odom", max_gap=1.0)
    inv.add("map", "odom", 0, Pose((10, 0, 0)), static=True)
    inv.add("map", "camera", 0, Pose((1, 2, 0)), static=True)
    assert inv.pose_at("camera", 0).position == pytest.approx((-9, 2, 0))
    with pytest.raises(PoseUnavailable, match="different trees"):
        tree.pose_at("lidar", 0)
    with pytest.raises(PoseNotYetKnown, match="odom -> base_link"):
        tree.pose_at("camera", 3 * S)


# ---- keyframe rule -----------------------------------------------------------------------------
def test_keyframe_rule_distance_angle_novelty():
    rng = np.random.default_rng(0)
    e = unit(rng)
    sel = KeyframeSelector(KeyframePolicy(min_distance=1.0, min_angle=0.5, novelty=0.9))
    assert sel.consider("c", Pose((0, 0, 0)), e) == "first"
    assert sel.consider("c", Pose((0.5, 0, 0)), e) is None
    assert sel.consider("other", Pose((0.5, 0, 0)), e) == "first"  # per camera
    assert sel.consider("c", Pose((1.0, 0, 0)), e) == "moved"
    assert sel.consider("c", Pose((1.0, 0, 0), yaw_q(0.6)), e) == "turned"
    assert sel.consider("c", Pose((1.0, 0, 0), yaw_q(0.6)), unit(rng)) == "novel"
    with pytest.raises(PlaceMemoryError, match="novelty must be in"):
        KeyframePolicy(novelty=1.5)


# ---- places ------------------------------------------------------------------------------------
def kf(x, kid, dim=2, emb=None):
    return Keyframe(np.asarray(emb if emb is not None else np.ones(dim) / math.sqrt(dim),
                               np.float32), Pose((x, 0, 0), frame_id="map"), kid * S, "cam",
                    keyframe_id=kid)


def test_places_group_within_min_separation_and_rank_by_mean_of_max_per_text():
    frames = [kf(0.0, 1), kf(0.4, 2), kf(5.0, 3), kf(9.0, 4)]
    cos = np.array([[0.9, 0.1],   # place A: text 0 here ...
                    [0.2, 0.8],   # ... text 1 here, 0.4 m away: same place
                    [0.6, 0.6],   # place B
                    [0.3, 0.1]])  # place C
    places = group_places(frames, cos, k=3, min_separation=1.0)
    assert [p.keyframe.keyframe_id for p in places] == [1, 3, 4]
    assert places[0].scores == pytest.approx((0.9, 0.8)) and places[0].members == 2
    assert places[0].score == pytest.approx(0.85)
    split = group_places(frames, cos, k=2, min_separation=0.1)
    assert [p.keyframe.keyframe_id for p in split] == [3, 1]  # 0.6 > 0.5 once A is split


# ---- store -------------------------------------------------------------------------------------
MODEL = ModelIdentity("tiny/a", "a" * 64, 8)


def test_store_persists_searches_and_refuses_another_model(tmp_path):
    rng = np.random.default_rng(1)
    uri = str(tmp_path / "mem" / "places.db")
    store = KeyframeStore(uri, MODEL)
    embs = [unit(rng) for _ in range(20)]
    thumb = encode_thumbnail(np.full((48, 64, 3), 128, np.uint8))
    ids = store.insert([Keyframe(e, Pose((i, 2 * i, 0), yaw_q(0.1 * i), "map"), i * S, "cam",
                                 thumb) for i, e in enumerate(embs)])
    assert len(set(ids)) == 20 and store.count() == 20
    store.close()

    store = KeyframeStore(uri, MODEL)  # a restart keeps everything
    assert store.count() == 20
    places = query_places(store, embs[7][None], k=1, min_separation=0.5).places
    best = places[0].keyframe
    assert best.keyframe_id == ids[7] and places[0].score == pytest.approx(1.0, abs=1e-5)
    assert best.pose.position == pytest.approx((7, 14, 0)) and best.stamp_ns == 7 * S
    assert best.pose.yaw == pytest.approx(0.7)
    full = store.get([ids[3]], with_thumbnails=True)[0]
    assert decode_thumbnail(full.thumbnail)[:2] == b"\xff\xd8"  # a JPEG
    assert sorted(k.keyframe_id for k in store.iter_keyframes(batch=7)) == sorted(ids)
    with pytest.raises(StoreError, match="8-d"):
        store.search(np.ones((1, 4), np.float32), 3)
    store.close()

    other = ModelIdentity("tiny/b", "b" * 64, 8)
    with pytest.raises(ModelMismatch, match="built with model tiny/a .* but this is tiny/b"):
        KeyframeStore(uri, other)
    with pytest.raises(ModelMismatch, match="16-d"):
        KeyframeStore(uri, ModelIdentity("tiny/a", "a" * 64, 16))

    store = KeyframeStore(uri, MODEL)
    assert store.clear() == 20 and store.count() == 0
    store.close()
    with pytest.raises(ModelMismatch):  # clearing keeps the model record
        KeyframeStore(uri, other)


def test_store_uri_is_a_folder_a_db_file_or_a_server(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="not a Milvus Lite '.db' file"):
        KeyframeStore(str(tmp_path / "notes.txt"), MODEL)
    store = KeyframeStore(str(tmp_path / "folder"), MODEL)
    assert store.uri == str(tmp_path / "folder" / "places.db")
    store.close()


def test_foreign_collection_is_refused(tmp_path):
    from pymilvus import DataType, MilvusClient

    uri = str(tmp_path / "foreign.db")
    c = MilvusClient(uri)
    s = MilvusClient.create_schema(auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=8)
    c.create_collection("places", schema=s)
    c.close()
    with pytest.raises(StoreError, match="not made by clip_perception"):
        KeyframeStore(uri, MODEL)


# ---- recorder ----------------------------------------------------------------------------------
def test_recorder_waits_for_late_poses_counts_missing_ones_and_stores_keyframes(tmp_path):
    rng = np.random.default_rng(2)
    store = KeyframeStore(str(tmp_path / "r.db"), MODEL)
    poses = TopicPoseSource("map", max_gap=0.5)
    rec = KeyframeRecorder(store, poses, KeyframeSelector(KeyframePolicy(1.0, 1.0, 0.0)))
    img = np.zeros((40, 60, 3), np.uint8)
    e = unit(rng)
    poses.add(1 * S, Pose((0, 0, 0), frame_id="map"))
    obs = [Observation("cam", "cam_optical", int(t * S), e, img) for t in (1.0, 1.2, 1.4)]
    out = rec.add(obs[:1])
    assert [o.result for o in out] == [STORED]
    assert rec.add(obs[1:]) == [] and rec.pending == 2  # newer than the newest pose: they wait
    poses.add(int(1.3 * S), Pose((1.3, 0, 0), frame_id="map"))
    out = rec.add([])
    assert [o.result for o in out] == [NOT_KEY] and rec.pending == 1  # 1.2 s: 0.2 m moved
    poses.add(3 * S, Pose((3, 0, 0), frame_id="map"))  # 1.7 s gap > max_pose_gap 0.5 s
    out = rec.add([])
    assert [o.result for o in out] == [NO_POSE] and "gap" in out[0].detail
    obs2 = Observation("cam", "cam_optical", 3 * S, e, img)
    out = rec.add([obs2])
    assert out[0].result == STORED and out[0].detail == "moved"
    assert rec.counts == {STORED: 2, NOT_KEY: 1, NO_POSE: 1}
    stored = store.get([out[0].keyframe_id])[0]
    assert stored.pose.position == pytest.approx((3, 0, 0)) and stored.camera == "cam"
    late = Observation("cam", "cam_optical", 9 * S, e, img)
    assert rec.add([late]) == [] and [o.result for o in rec.flush()] == [NO_POSE]
    store.close()


def test_thumbnail_refuses_non_rgb():
    with pytest.raises(PlaceMemoryError, match="HxWx3 uint8"):
        encode_thumbnail(np.zeros((4, 4), np.uint8))


# ---- settings (memory.* parameters) ------------------------------------------------------------
def test_memory_settings_name_the_parameter_and_the_reason():
    from clip_perception.core.memory.settings import MemorySettings, MemorySettingsError

    values = {"memory." + k: v for k, v in MemorySettings().__dict__.items()}
    assert MemorySettings.from_values(values) == MemorySettings()
    for name, value, reason in (("pose_source", "gps", "expected one of tf, topic"),
                                ("max_pose_gap", 0.0, "expected > 0 seconds"),
                                ("min_angle", 4.0, "must be in [0.0, 3.14"),
                                ("collection", "my places", "letters, digits"),
                                ("thumbnail_size", -1, "0 (none)..1024")):
        with pytest.raises(MemorySettingsError, match=re.escape(reason)) as err:
            MemorySettings.from_values(dict(values, **{"memory." + name: value}))
        assert err.value.parameter == "memory." + name
    with pytest.raises(MemorySettingsError, match="pose_topic: is empty"):
        MemorySettings(pose_source="topic", pose_topic=" ")
    with pytest.raises(MemorySettingsError, match="memory.uri: not set"):
        MemorySettings.from_values({k: v for k, v in values.items() if k != "memory.uri"})
