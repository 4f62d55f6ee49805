"""Takes and the three-way split on data that can leak: near-identical frames within a take."""
from __future__ import annotations

import numpy as np
import pytest

from clip_perception.training.bags import scan_bag
from clip_perception.training.data import Frame, TrainingInputError
from clip_perception.training.folders import scan_folder
from clip_perception.training.split import drop_near, split_takes
from clip_perception.training.takes import find_takes
from training_scenes import CLASSES, SceneTake, write_folders

NEAR_COPY = 6.0  # mean |pixel difference|: frames of one take stay under ~3, other takes > 9


def _scene_frames(takes_per_label=6, seconds=12, hz=2.0, seed=0, source="bag", t0=0,
                  condition=""):
    """Takes of the scene generator, labels taking turns, as decoded frames of one source."""
    rng = np.random.default_rng(seed)
    frames, t, take_no = [], t0, 0
    for _ in range(takes_per_label):
        for label in CLASSES:
            take = SceneTake(label, rng)
            for i in range(int(seconds * hz)):
                t_ns = t + int(i / hz * 1e9)
                frames.append(Frame(source, "/cam", t_ns, label, f"{source}{t_ns}", take.frame(),
                                    take=take_no, condition=condition))
            take_no += 1
            t += int(seconds * 1e9)
    return frames


def _old_block_split(frames, block_s=10.0, gap_s=1.0, val_fraction=0.25, seed=0):
    """The rule this package used before takes (kept here only to show that it leaks): runs of
    one label cut into 10 s blocks, a quarter of each label's blocks to validation, 1 s gap."""
    rng = np.random.default_rng(seed)
    blocks = []
    for f in sorted(frames, key=lambda f: f.t_ns):
        b = blocks[-1] if blocks else None
        if b and b[-1].label == f.label and f.t_ns - b[0].t_ns < block_s * 1e9:
            b.append(f)
        else:
            blocks.append([f])
    train, val = [], []
    for label in CLASSES:
        mine = [b for b in blocks if b[0].label == label]
        chosen = set(rng.choice(len(mine), max(1, round(val_fraction * len(mine))), replace=False))
        for i, b in enumerate(mine):
            (val if i in chosen else train).extend(b)
    kept, _ = drop_near(train, val, gap_s)
    return kept, val


def _near_copies(held_out, train) -> float:
    """Share of held-out frames with a frame of the same label in training that is a near copy."""
    hits = 0
    for f in held_out:
        same = np.stack([g.crop for g in train if g.label == f.label]).astype(np.float32)
        hits += np.abs(same - f.crop.astype(np.float32)).mean(axis=(1, 2, 3)).min() < NEAR_COPY
    return hits / len(held_out)


def test_old_block_split_leaks_and_the_take_split_does_not():
    frames = _scene_frames()
    old_train, old_val = _old_block_split(frames)
    assert _near_copies(old_val, old_train) > 0.3  # the takes of 12 s were cut at 10 s
    split = split_takes(find_takes(frames), CLASSES, gap_seconds=1.0)
    for subset in ("validation", "test"):
        assert _near_copies(split.frames(subset), split.train_frames) == 0.0


def test_takes_go_whole_into_one_subset_with_a_gap():
    frames = _scene_frames(takes_per_label=5, seconds=6)
    takes = find_takes(frames)
    assert len(takes) == 5 * len(CLASSES)
    split = split_takes(takes, CLASSES, val_fraction=0.2, test_fraction=0.2, gap_seconds=2.0)
    where = {}
    for subset, items in split.takes.items():
        assert {t.label for t in items} == set(CLASSES), subset  # every label in every subset
        for t in items:
            assert id(t) not in where
            where[id(t)] = subset
    assert len(where) == len(takes)
    held = np.array([f.t_ns for s in ("validation", "test") for f in split.frames(s)])
    assert min(np.abs(held - f.t_ns).min() for f in split.train_frames) >= 2e9
    train_take_frames = sum(len(t.frames) for t in split.takes["train"])
    assert split.dropped_gap > 0 and len(split.train_frames) + split.dropped_gap == train_take_frames
    entry = split.describe()["test"][0]
    assert set(entry) == {"source", "topic", "label", "start", "end"} and entry["end"] > entry["start"]


def test_fewer_than_three_takes_is_refused_with_counts_and_advice():
    frames = [f for f in _scene_frames(takes_per_label=4, seconds=4)
              if not (f.label == "door" and f.take >= 2 * len(CLASSES))]  # door: 2 takes
    with pytest.raises(TrainingInputError) as err:
        split_takes(find_takes(frames), CLASSES)
    msg = str(err.value)
    assert "'door': 2" in msg and "'cup': 4" in msg and "Record 'door' 1 more time" in msg
    assert "--allow-few-takes" in msg


def test_allow_few_takes_cuts_pieces_and_marks_the_split_optimistic():
    frames = [f for f in _scene_frames(takes_per_label=3, seconds=6)
              if not (f.label == "door" and f.take >= len(CLASSES))]  # door: 1 take
    split = split_takes(find_takes(frames), CLASSES, gap_seconds=0.0, allow_few_takes=True)
    assert split.optimistic == ["door"]
    assert all(any(t.label == "door" for t in split.takes[s]) for s in split.takes)


def test_a_take_spans_the_topics_of_its_bag(mcap_bag):
    path, info = mcap_bag
    cands = scan_bag(path, ["/cam/image", "/cam/compressed"], label_topic="/label")
    frames = [Frame(c.source, c.topic, c.t_ns, c.label, str(i), np.zeros((1, 1, 3), np.uint8),
                    take=c.take) for i, c in enumerate(cands)]
    takes = find_takes(frames)
    assert len(takes) == 4 * len(CLASSES)  # the schedule: 4 segments per label
    assert all(t.topics == ["/cam/compressed", "/cam/image"] for t in takes)
    split = split_takes(takes, CLASSES, gap_seconds=1.0)
    val_t = {f.t_ns // 10**6 for f in split.frames("validation")}  # twins are 1 us apart
    assert not val_t & {f.t_ns // 10**6 for f in split.train_frames}


def test_folder_takes_from_numbered_sequences_and_subfolders(tmp_path):
    root = write_folders(tmp_path / "seq", per_class=6, takes=3)  # take0_000.png ... take2_001.png
    cands = scan_folder(root)
    assert len({(c.label, c.take) for c in cands}) == 3 * len(CLASSES)
    (tmp_path / "sub" / "cup" / "morning").mkdir(parents=True)
    (tmp_path / "sub" / "cup" / "evening").mkdir(parents=True)
    for d in ("morning", "evening"):
        for name in ("a.png", "b.png"):
            (tmp_path / "sub" / "cup" / d / name).write_bytes(b"")
    (tmp_path / "sub" / "cup" / "img_7.png").write_bytes(b"")
    (tmp_path / "sub" / "cup" / "img_9.png").write_bytes(b"")  # 8 is missing: a new take
    sub = scan_folder(tmp_path / "sub")
    takes = {c.topic: c.take for c in sub}
    assert takes["cup/morning/a.png"] == takes["cup/morning/b.png"]
    assert takes["cup/evening/a.png"] != takes["cup/morning/a.png"]
    assert takes["cup/img_7.png"] != takes["cup/img_9.png"]
    frames = [Frame(c.source, c.topic, c.t_ns, c.label, c.topic, np.zeros((1, 1, 3), np.uint8),
                    timed=False, take=c.take) for c in sub]
    morning = [t for t in find_takes(frames) if "cup/morning/a.png" in t.describe()[0]["files"]]
    assert morning[0].describe() == [{"source": str(tmp_path / "sub"), "topic": "", "label": "cup",
                                      "files": ["cup/morning/a.png", "cup/morning/b.png"]}]


def test_bags_of_one_session_are_not_independent():
    """Bag b starts 0.5 s after bag a ends: frames at the seam are near in time although they
    are in two files, so the gap applies across bags."""
    a = _scene_frames(takes_per_label=3, seconds=4, source="a")
    b = _scene_frames(takes_per_label=3, seconds=4, source="b", seed=1,
                      t0=max(f.t_ns for f in a) + 500_000_000)
    held = [f for f in a if f.t_ns >= max(g.t_ns for g in a) - 1e9]  # a's last second
    kept, dropped = drop_near(b, held, gap_seconds=2.0)
    assert dropped > 0
    assert all(f.t_ns - max(h.t_ns for h in held) >= 2e9 for f in kept)
