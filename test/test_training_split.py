"""Time-block split: whole blocks to validation, no near-copy leakage."""
from __future__ import annotations

import numpy as np
import pytest

from clip_perception.training.data import Frame, TrainingInputError
from clip_perception.training.split import split_by_time, time_blocks


def _frames(schedule, source="bag", topic="/cam"):
    # 2 Hz frames, label segments as given: [(label, seconds), ...]
    out, t = [], 0.0
    for label, seconds in schedule:
        for i in range(int(seconds * 2)):
            out.append(Frame(source, topic, int((t + i / 2) * 1e9), label, f"{source}{t + i}",
                             np.zeros((1, 1, 3), np.uint8)))
        t += seconds
    return out


def test_blocks_never_span_labels_or_block_length():
    frames = _frames([("cup", 25), ("door", 5)])
    blocks = time_blocks(frames, 10.0)
    assert [(b[0].label, len(b)) for b in blocks] == [("cup", 20), ("cup", 20), ("cup", 10),
                                                      ("door", 10)]


def test_split_moves_whole_blocks_and_keeps_a_gap():
    frames = _frames([("cup", 30), ("door", 30), ("cup", 30), ("door", 30)])
    split = split_by_time(frames, ["cup", "door"], val_fraction=0.3, block_seconds=10,
                          gap_seconds=2.0, seed=3)
    assert {f.label for f in split.val} == {"cup", "door"}
    assert {f.label for f in split.train} == {"cup", "door"}
    val_ids = {id(f) for f in split.val}
    assert not any(id(f) in val_ids for f in split.train)
    # every validation block is whole: its blocks' frames are all in val
    for block in time_blocks(frames, 10):
        in_val = [id(f) in val_ids for f in block]
        assert all(in_val) or not any(in_val)
    # no training frame within the gap of a validation frame (near copies)
    vt = np.array([f.t_ns for f in split.val])
    assert min(abs(vt - f.t_ns).min() for f in split.train) >= 2e9
    assert split.dropped_gap > 0
    assert len(split.train) + len(split.val) + split.dropped_gap == len(frames)


def test_split_is_per_source_and_seeded():
    frames = _frames([("cup", 20), ("door", 20)], "a") + _frames([("cup", 20), ("door", 20)], "b")
    s1 = split_by_time(frames, ["cup", "door"], block_seconds=10, seed=1)
    s2 = split_by_time(frames, ["cup", "door"], block_seconds=10, seed=1)
    assert [f.digest for f in s1.val] == [f.digest for f in s2.val]


def test_label_in_a_single_block_is_an_error():
    frames = _frames([("cup", 30), ("door", 5)])
    with pytest.raises(TrainingInputError, match="'door' has frames in 1 time block"):
        split_by_time(frames, ["cup", "door"], block_seconds=10)


def test_folder_images_are_their_own_blocks():
    frames = [Frame("root", f"cup/{i}.png", i, "cup", str(i), np.zeros((1, 1, 3), np.uint8),
                    timed=False) for i in range(8)]
    assert len(time_blocks(frames, 10)) == 8
    split = split_by_time(frames, ["cup"], val_fraction=0.25)
    assert len(split.val) == 2 and len(split.train) == 6


def test_topics_of_one_bag_share_blocks():
    """An Image topic and its CompressedImage twin show the same moment: never split apart."""
    sched = [("cup", 20), ("door", 20), ("cup", 20), ("door", 20)]
    frames = _frames(sched, "bag", "/cam/image") + _frames(sched, "bag", "/cam/compressed")
    split = split_by_time(frames, ["cup", "door"], block_seconds=10, gap_seconds=1.0, seed=5)
    val_t = {f.t_ns for f in split.val}
    assert {f.t_ns for f in split.val if f.topic == "/cam/image"} == \
        {f.t_ns for f in split.val if f.topic == "/cam/compressed"}
    assert not val_t & {f.t_ns for f in split.train}
