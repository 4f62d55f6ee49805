"""Labelling sources: a YAML file of time intervals per bag, or a std_msgs/String label topic.

Intervals file (times in seconds from the start of each bag, half-open [start, end)):

    kitchen_run1:                 # bag name: the rosbag2 folder name or the .bag file stem
      - {start: 0.0, end: 12.5, label: cup}
      - {start: 14.0, end: 30.0, label: apple}
    hallway:
      - {start: 3, end: 20, label: door}

Frames outside every interval have no label and are skipped.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data import TrainingInputError


def bag_name(path: str | os.PathLike) -> str:
    """How the intervals file names a bag: folder name (rosbag2) or file stem (ROS 1 .bag)."""
    p = Path(path)
    return p.stem if p.suffix == ".bag" else p.name


@dataclass(frozen=True)
class Interval:
    start_ns: int  # relative to the bag start
    end_ns: int
    label: str


class IntervalLabels:
    """Bag name -> sorted, non-overlapping intervals."""

    def __init__(self, intervals: dict[str, list[Interval]], source: str = "(in memory)"):
        self.source = source
        self.intervals = {}
        for bag, items in intervals.items():
            items = sorted(items, key=lambda i: i.start_ns)
            for a, b in zip(items, items[1:]):
                if b.start_ns < a.end_ns:
                    raise TrainingInputError(
                        f"{source}: intervals of bag '{bag}' overlap: [{a.start_ns / 1e9}, "
                        f"{a.end_ns / 1e9}) '{a.label}' and [{b.start_ns / 1e9}, {b.end_ns / 1e9}) "
                        f"'{b.label}'; each moment needs at most one label")
            self.intervals[bag] = items
        self._starts = {bag: [i.start_ns for i in items] for bag, items in self.intervals.items()}

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "IntervalLabels":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise TrainingInputError(f"labels file not found: {path}")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise TrainingInputError(f"labels file {path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or not doc:
            raise TrainingInputError(
                f"labels file {path}: expected a mapping of bag name -> list of "
                f"{{start, end, label}} (seconds from bag start), got {type(doc).__name__}")
        out: dict[str, list[Interval]] = {}
        for bag, items in doc.items():
            if not isinstance(items, list):
                raise TrainingInputError(f"labels file {path}: bag '{bag}' maps to "
                                         f"{type(items).__name__}, expected a list of intervals")
            parsed = []
            for n, item in enumerate(items):
                if not isinstance(item, dict) or set(item) != {"start", "end", "label"}:
                    raise TrainingInputError(
                        f"labels file {path}: bag '{bag}' interval #{n} is {item!r}; expected "
                        "{start: <s>, end: <s>, label: <name>}")
                try:
                    start, end = float(item["start"]), float(item["end"])
                except (TypeError, ValueError):
                    raise TrainingInputError(f"labels file {path}: bag '{bag}' interval #{n} has "
                                             f"non-numeric start/end {item!r}") from None
                label = str(item["label"]).strip()
                if not label or end <= start or start < 0:
                    raise TrainingInputError(
                        f"labels file {path}: bag '{bag}' interval #{n} {item!r} needs a "
                        "non-empty label and 0 <= start < end")
                parsed.append(Interval(int(round(start * 1e9)), int(round(end * 1e9)), label))
            out[str(bag)] = parsed
        return cls(out, str(path))

    def check_bags(self, bag_paths: Sequence[str | os.PathLike]) -> None:
        """Catch typos: every named bag must be given, every given bag must be labelled."""
        names = [bag_name(p) for p in bag_paths]
        unknown = sorted(set(self.intervals) - set(names))
        if unknown:
            raise TrainingInputError(f"{self.source} labels bag(s) {unknown} that are not among "
                                     f"the bags given: {names}")
        unlabelled = [n for n in names if not self.intervals.get(n)]
        if unlabelled:
            raise TrainingInputError(f"{self.source} has no intervals for bag(s) {unlabelled}; "
                                     f"it labels {sorted(self.intervals)}")

    def label_at(self, bag: str, t_rel_ns: int) -> str | None:
        found = self.interval_at(bag, t_rel_ns)
        return None if found is None else found[1]

    def interval_at(self, bag: str, t_rel_ns: int) -> tuple[int, str] | None:
        """(index of the interval holding ``t_rel_ns``, its label), or None between intervals."""
        items = self.intervals.get(bag, [])
        i = bisect.bisect_right(self._starts.get(bag, []), t_rel_ns) - 1
        if i >= 0 and items[i].start_ns <= t_rel_ns < items[i].end_ns:
            return i, items[i].label
        return None

    @property
    def labels(self) -> list[str]:
        return sorted({i.label for items in self.intervals.values() for i in items})


class LabelTrack:
    """State of a String topic (label or lighting condition) while reading a bag in time order:
    each std_msgs/String holds until the next one; an empty string clears it. ``changes``
    counts changes of value, so frames between two changes belong to one run."""

    def __init__(self):
        self.current: str | None = None
        self.changes = 0

    def update(self, text: str) -> None:
        text = (text or "").strip() or None
        if text != self.current:
            self.changes += 1
        self.current = text


class TakeCounter:
    """Numbers the takes of one source: a new take starts whenever the key of a frame (its
    label run and condition run) differs from the previous frame's."""

    def __init__(self):
        self._last = None
        self.take = -1

    def number(self, key) -> int:
        if key != self._last:
            self._last = key
            self.take += 1
        return self.take
