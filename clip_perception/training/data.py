"""Frame records shared by the readers, the split, the feature cache and the trainer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.errors import ClipPerceptionError


class TrainingInputError(ClipPerceptionError, ValueError):
    """The training/evaluation input cannot be used; the message says what was received and
    what was expected."""


@dataclass(frozen=True)
class Candidate:
    """A labelled frame before decoding: enough to subsample and select it.

    ``t_ns`` is the bag's record time for bag frames, the file's position for folder images
    (``timed=False``: folder images carry no time). ``take`` numbers the contiguous runs of one
    label (and one lighting condition) within the source: frames with the same number form one
    take, which the split never cuts. ``condition`` names the real lighting condition ("" when
    the user named none).
    """

    source: str  # bag path or image folder root
    topic: str  # image topic, or the file path relative to the folder root
    t_ns: int
    label: str
    timed: bool = True
    take: int = 0
    condition: str = ""


@dataclass
class Frame:
    """A decoded, labelled frame, kept as the model-size crop (SxSx3 uint8 RGB).

    Augmentation runs on the crop: lighting transforms are photometric, and keeping crops
    instead of full frames bounds memory (1,000 frames at 224 px = 150 MB, not 900 MB).
    ``digest`` identifies the frame's content (hash of the serialised message or file bytes)
    and keys the feature cache.
    """

    source: str
    topic: str
    t_ns: int
    label: str
    digest: str
    crop: np.ndarray = field(repr=False)
    timed: bool = True
    take: int = 0
    condition: str = ""

    @classmethod
    def of(cls, c: Candidate, digest: str, crop: np.ndarray) -> "Frame":
        """The decoded frame of candidate ``c``."""
        return cls(c.source, c.topic, c.t_ns, c.label, digest, crop, c.timed, c.take, c.condition)


@dataclass
class ReadStats:
    """What the readers skipped, and why, so the tool can say it instead of hiding it."""

    messages_seen: int = 0
    unlabelled: int = 0
    outside_label_set: dict[str, int] = field(default_factory=dict)
    corrupt: int = 0
    corrupt_examples: list[str] = field(default_factory=list)
    dropped_min_interval: int = 0
    dropped_max_per_label: int = 0

    def add_corrupt(self, where: str, reason: str, keep: int = 5) -> None:
        self.corrupt += 1
        if len(self.corrupt_examples) < keep:
            self.corrupt_examples.append(f"{where}: {reason}")

    def merge(self, other: "ReadStats") -> None:
        self.messages_seen += other.messages_seen
        self.unlabelled += other.unlabelled
        for k, v in other.outside_label_set.items():
            self.outside_label_set[k] = self.outside_label_set.get(k, 0) + v
        self.corrupt += other.corrupt
        self.corrupt_examples.extend(other.corrupt_examples[:max(0, 5 - len(self.corrupt_examples))])
        self.dropped_min_interval += other.dropped_min_interval
        self.dropped_max_per_label += other.dropped_max_per_label

    def to_dict(self) -> dict:
        return {"messages_seen": self.messages_seen, "unlabelled": self.unlabelled,
                "outside_label_set": dict(self.outside_label_set), "corrupt": self.corrupt,
                "corrupt_examples": list(self.corrupt_examples),
                "dropped_min_interval": self.dropped_min_interval,
                "dropped_max_per_label": self.dropped_max_per_label}


def subsample_min_interval(candidates: Sequence[Candidate], min_interval_s: float,
                           stats: ReadStats | None = None) -> list[Candidate]:
    """Keep a frame only if at least ``min_interval_s`` passed since the last kept frame of the
    same (source, topic). Untimed (folder) frames are kept as they are."""
    if min_interval_s < 0:
        raise TrainingInputError(f"minimum time between frames must be >= 0 s, got {min_interval_s}")
    if min_interval_s == 0:
        return list(candidates)
    step = int(round(min_interval_s * 1e9))
    last: dict[tuple[str, str], int] = {}
    kept = []
    for c in sorted(candidates, key=lambda c: (c.source, c.topic, c.t_ns)):
        key = (c.source, c.topic)
        if c.timed and key in last and c.t_ns - last[key] < step:
            if stats is not None:
                stats.dropped_min_interval += 1
            continue
        last[key] = c.t_ns
        kept.append(c)
    return kept


def subsample_max_per_label(candidates: Sequence[Candidate], max_per_label: int,
                            stats: ReadStats | None = None) -> list[Candidate]:
    """At most ``max_per_label`` frames per label, evenly spaced over the label's frames in
    (source, time) order, so the kept frames cover the whole session rather than its start."""
    if max_per_label < 0:
        raise TrainingInputError(f"max frames per label must be >= 0 (0 = no limit), got {max_per_label}")
    if max_per_label == 0:
        return list(candidates)
    by_label: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.source, c.topic, c.t_ns)):
        by_label.setdefault(c.label, []).append(c)
    kept = []
    for label, items in by_label.items():
        if len(items) > max_per_label:
            idx = np.unique(np.linspace(0, len(items) - 1, max_per_label).round().astype(int))
            if stats is not None:
                stats.dropped_max_per_label += len(items) - len(idx)
            items = [items[i] for i in idx]
        kept.extend(items)
    return kept


def check_label_set(labels: Sequence[str], frames: Sequence[Frame | Candidate], what: str) -> None:
    """Every requested label needs frames; an empty label set is an error."""
    if not labels:
        raise TrainingInputError(f"the label set is empty: no labels given with --labels and no "
                                 f"labelled frames found in {what}")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if list(labels).count(x) > 1})
        raise TrainingInputError(f"labels must be unique, got duplicates {dup}")
    counts = {label: 0 for label in labels}
    for f in frames:
        if f.label in counts:
            counts[f.label] += 1
    empty = [label for label, n in counts.items() if n == 0]
    if empty:
        have = {k: v for k, v in counts.items() if v}
        raise TrainingInputError(f"label(s) {empty} have no frames in {what}; frames per label: "
                                 f"{have or '(none)'}. Every label needs labelled frames.")
