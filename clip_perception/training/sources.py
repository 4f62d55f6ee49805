"""Labelled frames from every source (bags, image folders): scan, check labels, subsample,
decode. Shared by train_adapter and evaluate_prompts."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .bags import decode_bag, scan_bag
from .data import (Candidate, Frame, ReadStats, TrainingInputError, check_label_set,
                   subsample_max_per_label, subsample_min_interval)
from .folders import decode_folder, scan_folder, subfolders
from .labels import IntervalLabels, bag_name

logger = logging.getLogger(__name__)


@dataclass
class SourceSpec:
    bags: Sequence[str] = ()
    topics: Sequence[str] = ()
    labels_file: str | None = None  # YAML intervals per bag
    label_topic: str | None = None  # std_msgs/String in each bag
    folders: Sequence[str] = ()
    labels: Sequence[str] | None = None  # None: every label found in the sources, sorted
    min_interval_s: float = 0.0
    max_per_label: int = 0  # 0 = no limit
    conditions: Mapping[str, str] = field(default_factory=dict)  # source -> lighting condition
    condition_topic: str | None = None  # std_msgs/String in each bag naming the condition
    condition_folders: Sequence[str] = ()  # DIR/<condition>/<label>/<images>

    def describe(self) -> dict:
        return {"bags": [str(b) for b in self.bags], "topics": list(self.topics),
                "labels_file": self.labels_file, "label_topic": self.label_topic,
                "folders": [str(f) for f in self.folders], "min_interval_s": self.min_interval_s,
                "max_per_label": self.max_per_label, "conditions": dict(self.conditions),
                "condition_topic": self.condition_topic,
                "condition_folders": [str(f) for f in self.condition_folders]}

    def folder_sources(self) -> list[tuple[str, str]]:
        """(image folder, condition) for every --image-folder and every condition subfolder."""
        out = [(str(f), self.condition_of(f)) for f in self.folders]
        for root in self.condition_folders:
            subs = subfolders(root, "condition folder", "<condition>/<label>/<images>")
            out += [(str(sub), sub.name) for sub in subs]
        return out

    def condition_of(self, source) -> str:
        """The condition --condition names for ``source`` (by path, file/folder name or stem;
        ``kitchen_night.mcap`` also names the rosbag2 folder ``kitchen_night``)."""
        names = set(_source_names(source))
        for key, condition in self.conditions.items():
            if _key_names(key) & names:
                return condition
        return ""

    def check_conditions(self) -> None:
        """Every --condition must name a given bag or image folder (catches typos)."""
        known = {k for src in list(self.bags) + list(self.folders) for k in _source_names(src)}
        unknown = sorted(k for k in self.conditions if not _key_names(k) & known)
        if unknown:
            given = [str(x) for x in list(self.bags) + list(self.folders)]
            raise TrainingInputError(f"--condition names source(s) {unknown} that are not among "
                                     f"the bags/folders given: {given}")


def _source_names(source) -> list[str]:
    p = Path(os.path.expanduser(str(source)))
    return [str(source), str(p), p.name, bag_name(p)]


def _key_names(key: str) -> set[str]:
    p = Path(key)
    return {key, p.stem} if p.suffix in (".mcap", ".db3") else {key}


@dataclass
class LoadedFrames:
    frames: list[Frame]
    labels: list[str]
    stats: ReadStats = field(default_factory=ReadStats)
    starts: dict[str, int] = field(default_factory=dict)  # bag -> start record time (ns)

    @property
    def y(self) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.asarray([index[f.label] for f in self.frames], np.int64)


def _validate(spec: SourceSpec) -> IntervalLabels | None:
    if not spec.bags and not spec.folders and not spec.condition_folders:
        raise TrainingInputError("no frames source given; expected --bag (with --topic) and/or "
                                 "--image-folder / --condition-folders")
    spec.check_conditions()
    if spec.condition_topic and not spec.bags:
        raise TrainingInputError("--condition-topic names a topic in the bags, but no --bag was given")
    if spec.bags:
        if not spec.topics:
            raise TrainingInputError("--bag needs at least one --topic (Image or CompressedImage)")
        if bool(spec.labels_file) == bool(spec.label_topic):
            raise TrainingInputError("bags need exactly one labelling source: --labels-file "
                                     "(YAML intervals per bag) or --label-topic (std_msgs/String); "
                                     f"got {'both' if spec.labels_file else 'neither'}")
    elif spec.labels_file or spec.label_topic:
        raise TrainingInputError("--labels-file/--label-topic label bag frames, but no --bag was given")
    if spec.labels is not None and not list(spec.labels):
        raise TrainingInputError("the label set is empty (--labels given with no labels)")
    if spec.labels_file:
        intervals = IntervalLabels.from_yaml(spec.labels_file)
        intervals.check_bags(spec.bags)
        return intervals
    return None


def load_frames(spec: SourceSpec, prepare: Callable[[np.ndarray], np.ndarray],
                progress: bool | None = None) -> LoadedFrames:
    from tqdm import tqdm

    intervals = _validate(spec)
    stats = ReadStats()
    candidates: list[Candidate] = []
    starts: dict[str, int] = {}
    for bag in spec.bags:
        candidates += scan_bag(bag, spec.topics, intervals=intervals, label_topic=spec.label_topic,
                               stats=stats, condition=spec.condition_of(bag),
                               condition_topic=spec.condition_topic, starts=starts)
    folder_roots = []
    folders = spec.folder_sources()
    for folder, condition in folders:
        found = scan_folder(folder, stats=stats, condition=condition)
        folder_roots.append(found[0].source if found else str(folder))
        candidates += found
    what = ", ".join([str(b) for b in spec.bags] + [f for f, _ in folders])
    labels = list(spec.labels) if spec.labels is not None else sorted({c.label for c in candidates})
    wanted = set(labels)
    kept = []
    for c in candidates:
        if c.label in wanted:
            kept.append(c)
        else:
            stats.outside_label_set[c.label] = stats.outside_label_set.get(c.label, 0) + 1
    if stats.outside_label_set:
        logger.warning("skipped frames labelled outside the label set %s: %s", labels,
                       stats.outside_label_set)
    check_label_set(labels, kept, what)  # fail before decoding anything
    kept = subsample_min_interval(kept, spec.min_interval_s, stats)
    kept = subsample_max_per_label(kept, spec.max_per_label, stats)
    frames: list[Frame] = []
    with tqdm(total=len(kept), desc="reading frames", unit="frame", leave=False,
              disable=None if progress is None else not progress) as bar:
        for bag in spec.bags:
            frames += decode_bag(bag, kept, prepare, stats=stats, progress=bar)
        for root in folder_roots:
            frames += decode_folder(root, kept, prepare, stats=stats, progress=bar)
    if stats.corrupt:
        logger.warning("skipped %d unreadable message(s), e.g. %s", stats.corrupt,
                       "; ".join(stats.corrupt_examples[:3]))
    check_label_set(labels, frames, what + " (after skipping unreadable messages)")
    return LoadedFrames(frames, labels, stats, starts)
