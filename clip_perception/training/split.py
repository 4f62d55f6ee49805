"""Three-way split by whole takes: training, validation (picks epoch, blend, plain vs
augmented) and test (touched once, for the verdict).

Frames within a take are near copies, so a take is never cut (unless ``--allow-few-takes``,
and then the report says the numbers are optimistic). Training frames within ``gap_seconds``
of a validation or test frame are dropped as well: record times of all bags are compared, so
the end of one bag and the start of the next one of the same session cannot leak either.
Per label, takes are interleaved by lighting condition (in a seeded random order) before the
subsets are drawn, so the test takes of a label cover several conditions when it has enough
takes under several.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .data import Frame, TrainingInputError
from .takes import Take, cut_into_pieces, takes_per_label

SUBSETS = ("train", "validation", "test")
MIN_TAKES = 3  # one each for training, validation and test


@dataclass
class Split:
    takes: dict[str, list[Take]]  # subset -> takes
    train_frames: list[Frame]  # training takes' frames minus those within the gap
    dropped_gap: int
    optimistic: list[str] = field(default_factory=list)  # labels whose takes were cut

    def frames(self, subset: str) -> list[Frame]:
        if subset == "train":
            return self.train_frames
        return [f for t in self.takes[subset] for f in t.frames]

    def describe(self) -> dict:
        """The report's ``split``: subset -> take entries (``Take.describe``)."""
        return {s: [entry for t in self.takes[s] for entry in t.describe()] for s in SUBSETS}

    def conditions(self) -> dict:
        """subset -> the condition of each entry of ``describe()``, in the same order."""
        return {s: [t.condition for t in self.takes[s] for _ in t.describe()] for s in SUBSETS}


def few_takes_message(counts: dict[str, int]) -> str:
    few = {k: v for k, v in counts.items() if v < MIN_TAKES}
    return (f"label(s) {sorted(few)} have fewer than {MIN_TAKES} takes; takes per label: {counts}. "
            "A take is a contiguous run of one label on one source (bag, or a numbered file "
            "sequence / subfolder of an image folder); training, validation and test each need "
            "whole takes of every label. Record "
            + ", ".join(f"'{k}' {MIN_TAKES - v} more time(s)" for k, v in sorted(few.items()))
            + " (look away, then back, ideally under another light or from another place), or "
            "pass --allow-few-takes to cut takes into pieces (the report is then marked "
            "optimistic: pieces of one take are near copies).")


def _interleave(takes: list[Take], rng: np.random.Generator) -> list[Take]:
    by_cond: dict[str, list[Take]] = {}
    for t in takes:
        by_cond.setdefault(t.condition, []).append(t)
    names = [sorted(by_cond)[i] for i in rng.permutation(len(by_cond))]  # who goes first varies
    groups = [[by_cond[c][i] for i in rng.permutation(len(by_cond[c]))] for c in names]
    out = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def split_takes(takes: Sequence[Take], labels: Sequence[str], val_fraction: float = 0.2,
                test_fraction: float = 0.2, gap_seconds: float = 2.0, seed: int = 0,
                allow_few_takes: bool = False) -> Split:
    """Per label, ``test_fraction`` and ``val_fraction`` of its takes (at least one each) go to
    test and validation, the rest to training."""
    for name, v in (("validation", val_fraction), ("test", test_fraction)):
        if not 0.0 < v < 1.0:
            raise TrainingInputError(f"{name} fraction must be in (0, 1), got {v}")
    if val_fraction + test_fraction >= 1.0:
        raise TrainingInputError(f"validation + test fractions must leave takes for training, got "
                                 f"{val_fraction} + {test_fraction}")
    counts = takes_per_label(takes, labels)
    optimistic = sorted(k for k, v in counts.items() if v < MIN_TAKES)
    if optimistic and not allow_few_takes:
        raise TrainingInputError(few_takes_message(counts))
    rng = np.random.default_rng(seed)
    out: dict[str, list[Take]] = {s: [] for s in SUBSETS}
    for label in labels:
        mine = [t for t in takes if t.label == label]
        if label in optimistic:
            mine = cut_into_pieces(mine, MIN_TAKES)
        order = _interleave(mine, rng)
        n = len(order)
        n_test = max(1, int(round(test_fraction * n)))
        n_val = max(1, int(round(val_fraction * n)))
        while n_test + n_val > n - 1:  # keep at least one training take
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            else:
                n_test -= 1
        out["test"] += order[:n_test]
        out["validation"] += order[n_test:n_test + n_val]
        out["train"] += order[n_test + n_val:]
    held_out = [f for s in ("validation", "test") for t in out[s] for f in t.frames]
    kept, dropped = drop_near([f for t in out["train"] for f in t.frames], held_out, gap_seconds)
    missing = [label for label in labels if not any(f.label == label for f in kept)]
    if missing:
        raise TrainingInputError(f"label(s) {missing} have no training frames left after dropping "
                                 f"frames within {gap_seconds} s of validation/test frames; lower "
                                 "--gap or record more takes")
    return Split(out, kept, dropped, optimistic)


def drop_near(train: Sequence[Frame], held_out: Sequence[Frame], gap_seconds: float):
    """Training frames at least ``gap_seconds`` (record time, any bag and topic) away from every
    held-out frame; returns (kept, number dropped). Folder frames carry no time: kept."""
    if gap_seconds < 0:
        raise TrainingInputError(f"split gap must be >= 0 s, got {gap_seconds}")
    gap = int(round(gap_seconds * 1e9))
    times = np.sort(np.asarray([f.t_ns for f in held_out if f.timed], np.int64))
    if gap == 0 or len(times) == 0:
        return list(train), 0
    kept, dropped = [], 0
    for f in train:
        if f.timed:
            i = np.searchsorted(times, f.t_ns)
            near = [times[j] for j in (i - 1, i) if 0 <= j < len(times)]
            if any(abs(int(t) - f.t_ns) < gap for t in near):
                dropped += 1
                continue
        kept.append(f)
    return kept, dropped
