"""Train/validation split by time blocks, never by random frames.

Neighbouring frames of a recording are near copies: a random frame split would put copies of
validation frames into training and overstate accuracy. Frames are grouped into blocks — runs
of one label in one bag, cut every ``block_seconds`` — and whole blocks go to validation.
Blocks span all image topics of a bag: two cameras (or an Image and its CompressedImage twin)
at the same moment see the same scene, so a moment is either training or validation. Training
frames closer than ``gap_seconds`` to any validation frame of the same bag are dropped as well,
so the frames at a block boundary cannot leak either. Folder images carry no time: each one
is its own block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .data import Frame, TrainingInputError


@dataclass
class Split:
    train: list[Frame]
    val: list[Frame]
    dropped_gap: int
    blocks: dict  # label -> {"train": n_blocks, "val": n_blocks}


def time_blocks(frames: Sequence[Frame], block_seconds: float) -> list[list[Frame]]:
    if block_seconds <= 0:
        raise TrainingInputError(f"split block length must be > 0 s, got {block_seconds}")
    step = int(round(block_seconds * 1e9))
    blocks: list[list[Frame]] = []
    ordered = sorted(frames, key=lambda f: (f.source, f.timed, f.t_ns, f.topic))
    for f in ordered:
        prev = blocks[-1] if blocks else None
        if (prev is not None and f.timed and prev[0].timed and prev[0].source == f.source
                and prev[-1].label == f.label and f.t_ns - prev[0].t_ns < step):
            prev.append(f)
        else:
            blocks.append([f])
    return blocks


def split_by_time(frames: Sequence[Frame], labels: Sequence[str], val_fraction: float = 0.25,
                  block_seconds: float = 10.0, gap_seconds: float = 1.0, seed: int = 0) -> Split:
    """Per label, ``val_fraction`` of its blocks (at least one) go to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise TrainingInputError(f"validation fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[list[Frame]]] = {label: [] for label in labels}
    for block in time_blocks(frames, block_seconds):
        if block[0].label in by_label:
            by_label[block[0].label].append(block)
    train, val, info = [], [], {}
    for label, blocks in by_label.items():
        if len(blocks) < 2:
            raise TrainingInputError(
                f"label '{label}' has frames in {len(blocks)} time block(s) of {block_seconds} s; "
                "a split without leakage needs at least 2 (one for training, one for validation). "
                "Record the label longer or in several takes, or lower --block-seconds.")
        n_val = min(len(blocks) - 1, max(1, int(round(val_fraction * len(blocks)))))
        val_idx = set(rng.choice(len(blocks), size=n_val, replace=False).tolist())
        for i, block in enumerate(blocks):
            (val if i in val_idx else train).extend(block)
        info[label] = {"train": len(blocks) - n_val, "val": n_val}
    kept, dropped = drop_near(train, val, gap_seconds)
    missing = [label for label in labels if not any(f.label == label for f in kept)]
    if missing:
        raise TrainingInputError(f"label(s) {missing} have no training frames left after dropping "
                                 f"frames within {gap_seconds} s of validation frames; lower "
                                 "--split-gap or record more")
    return Split(kept, val, dropped, info)


def drop_near(train: Sequence[Frame], val: Sequence[Frame], gap_seconds: float):
    """Training frames at least ``gap_seconds`` away from every validation frame of the same
    bag (any topic); returns (kept, number dropped)."""
    if gap_seconds < 0:
        raise TrainingInputError(f"split gap must be >= 0 s, got {gap_seconds}")
    gap = int(round(gap_seconds * 1e9))
    val_times: dict[str, np.ndarray] = {}
    for f in val:
        if f.timed:
            val_times.setdefault(f.source, []).append(f.t_ns)
    val_times = {k: np.sort(np.asarray(v, np.int64)) for k, v in val_times.items()}
    kept, dropped = [], 0
    for f in train:
        times = val_times.get(f.source)
        if f.timed and times is not None and gap > 0:
            i = np.searchsorted(times, f.t_ns)
            near = [times[j] for j in (i - 1, i) if 0 <= j < len(times)]
            if any(abs(int(t) - f.t_ns) < gap for t in near):
                dropped += 1
                continue
        kept.append(f)
    return kept, dropped
