"""Bag reading, labelling sources, subsampling and bad-input errors."""
from __future__ import annotations

import pytest

from clip_perception.training.bags import decode_bag, scan_bag
from clip_perception.training.data import (Candidate, ReadStats, TrainingInputError,
                                           subsample_max_per_label, subsample_min_interval)
from clip_perception.training.labels import IntervalLabels, bag_name
from clip_perception.training.sources import SourceSpec, load_frames
from training_scenes import CLASSES, T0, write_folders


def _crop(rgb):
    return rgb[:8, :8].copy()


def _expected(schedule):
    return [label for _, label in schedule]


def test_label_topic_labels_every_frame_mcap(mcap_bag):
    path, info = mcap_bag
    stats = ReadStats()
    cands = scan_bag(path, ["/cam/compressed"], label_topic="/label", stats=stats)
    # the corrupt JPEG sits inside the first segment, so it is labelled too (decoding fails later)
    good = [c for c in cands if c.t_ns != T0 + 500_000_000]
    assert [c.label for c in good] == _expected(info["schedule"])
    assert stats.unlabelled == 0


def test_label_topic_ros1_bag(ros1_bag):
    path, info = ros1_bag
    cands = scan_bag(path, ["/cam/image"], label_topic="/label")
    assert [c.label for c in cands] == _expected(info["schedule"])
    frames = decode_bag(path, cands, _crop)
    assert len(frames) == len(cands) and frames[0].crop.shape == (8, 8, 3)


def test_intervals_file_sqlite3_bag(sqlite_bag):
    path, labels_file, info = sqlite_bag
    intervals = IntervalLabels.from_yaml(labels_file)
    cands = scan_bag(path, ["/cam/image"], intervals=intervals)
    assert [c.label for c in cands] == _expected(info["schedule"])


def test_label_holds_until_next_and_empty_clears():
    from clip_perception.training.labels import LabelTrack

    track = LabelTrack()
    assert track.current is None
    track.update("cup")
    assert track.current == "cup"
    track.update("  ")
    assert track.current is None


def test_intervals_are_half_open_and_unlabelled_gaps_skipped(tmp_path):
    f = tmp_path / "l.yaml"
    f.write_text("run1:\n  - {start: 1.0, end: 2.0, label: cup}\n  - {start: 2.0, end: 3, label: door}\n")
    iv = IntervalLabels.from_yaml(f)
    assert iv.label_at("run1", int(0.99e9)) is None
    assert iv.label_at("run1", int(1e9)) == "cup"
    assert iv.label_at("run1", int(2e9)) == "door"
    assert iv.label_at("run1", int(3e9)) is None
    assert iv.label_at("other", int(1.5e9)) is None


@pytest.mark.parametrize("text, match", [
    ("run1:\n  - {start: 0, end: 2, label: a}\n  - {start: 1, end: 3, label: b}\n", "overlap"),
    ("run1:\n  - {start: 2, end: 1, label: a}\n", "start < end"),
    ("run1:\n  - [0, 1, a]\n", "expected"),
    ("- just a list\n", "mapping of bag name"),
])
def test_bad_intervals_file(tmp_path, text, match):
    f = tmp_path / "l.yaml"
    f.write_text(text)
    with pytest.raises(TrainingInputError, match=match):
        IntervalLabels.from_yaml(f)


def test_intervals_file_naming_unknown_bag_is_an_error(sqlite_bag, tmp_path):
    path, _, _ = sqlite_bag
    f = tmp_path / "l.yaml"
    f.write_text("hallwy:\n  - {start: 0, end: 5, label: cup}\n")
    with pytest.raises(TrainingInputError, match=r"\['hallwy'\].*\['hallway'\]"):
        IntervalLabels.from_yaml(f).check_bags([path])
    assert bag_name("/x/run.bag") == "run" and bag_name("/x/run2/") == "run2"


def test_missing_topic_names_existing_topics(mcap_bag):
    path, _ = mcap_bag
    with pytest.raises(TrainingInputError) as err:
        scan_bag(path, ["/camera/rgb"], label_topic="/label")
    msg = str(err.value)
    assert "/camera/rgb" in msg and "/cam/image (sensor_msgs/msg/Image)" in msg
    assert "/cam/compressed (sensor_msgs/msg/CompressedImage)" in msg and "/label" in msg


def test_missing_label_topic_and_non_image_topic(mcap_bag):
    path, _ = mcap_bag
    with pytest.raises(TrainingInputError, match="no label topic '/labels'.*/cam/image"):
        scan_bag(path, ["/cam/image"], label_topic="/labels")
    with pytest.raises(TrainingInputError, match="not images"):
        scan_bag(path, ["/label"], label_topic="/label")


def test_corrupt_messages_are_skipped_and_counted(mcap_bag):
    path, info = mcap_bag
    stats = ReadStats()
    topics = ["/cam/image", "/cam/compressed"]
    cands = scan_bag(path, topics, label_topic="/label", stats=stats)
    frames = decode_bag(path, cands, _crop, stats=stats)
    assert stats.corrupt == 2
    assert len(frames) == 2 * info["frames_per_topic"] == len(cands) - 2
    joined = " ".join(stats.corrupt_examples)
    assert "undecodable compressed image" in joined and "undeserialisable message" in joined


def test_empty_label_set_is_an_error(mcap_bag):
    path, _ = mcap_bag
    with pytest.raises(TrainingInputError, match="label set is empty"):
        load_frames(SourceSpec(bags=[path], topics=["/cam/image"], label_topic="/label", labels=[]),
                    _crop, progress=False)


def test_label_with_no_frames_is_an_error(mcap_bag):
    path, _ = mcap_bag
    spec = SourceSpec(bags=[path], topics=["/cam/image"], label_topic="/label",
                      labels=["cup", "banana"])
    with pytest.raises(TrainingInputError, match=r"\['banana'\] have no frames"):
        load_frames(spec, _crop, progress=False)


def test_frames_outside_label_set_are_skipped_and_counted(mcap_bag):
    path, info = mcap_bag
    loaded = load_frames(SourceSpec(bags=[path], topics=["/cam/image"], label_topic="/label",
                                    labels=["cup", "door"]), _crop, progress=False)
    assert {f.label for f in loaded.frames} == {"cup", "door"}
    assert loaded.stats.outside_label_set == {"apple": info["frames_per_topic"] // 3}


def test_bags_need_exactly_one_labelling_source(mcap_bag, sqlite_bag):
    with pytest.raises(TrainingInputError, match="got neither"):
        load_frames(SourceSpec(bags=[mcap_bag[0]], topics=["/cam/image"]), _crop)
    with pytest.raises(TrainingInputError, match="got both"):
        load_frames(SourceSpec(bags=[sqlite_bag[0]], topics=["/cam/image"], label_topic="/l",
                               labels_file=str(sqlite_bag[1])), _crop)


def test_subsampling():
    cands = [Candidate("b", "/t", int(i * 0.25e9), "cup") for i in range(40)]  # 4 Hz, 10 s
    stats = ReadStats()
    kept = subsample_min_interval(cands, 1.0, stats)
    assert [c.t_ns for c in kept] == [int(i * 1e9) for i in range(10)]
    assert stats.dropped_min_interval == 30
    few = subsample_max_per_label(cands, 5, stats)
    assert len(few) == 5 and few[0] is cands[0] and few[-1] is cands[-1]  # spread over the session
    assert subsample_max_per_label(cands, 0) == cands


def test_image_folders(tmp_path):
    root = write_folders(tmp_path / "imgs", per_class=3)
    loaded = load_frames(SourceSpec(folders=[root], max_per_label=2), _crop, progress=False)
    assert loaded.labels == sorted(CLASSES)
    assert sorted(f.label for f in loaded.frames) == sorted(CLASSES * 2)
    assert all(not f.timed for f in loaded.frames)


def test_training_and_its_clis_never_import_rclpy_or_the_node():
    import subprocess
    import sys

    code = ("import sys, clip_perception.cli.train_adapter, clip_perception.cli.evaluate_prompts, "
            "clip_perception.training.pipeline; "
            "bad = [m for m in sys.modules if m.startswith(('rclpy', 'clip_perception.ros', "
            "'clip_perception.cli.node'))]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
