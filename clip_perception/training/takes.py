"""Takes: contiguous runs of one label (and one lighting condition) on one source.

Frames of a take are near copies of each other when the robot lingers on an object, so a take
is the unit the split moves: whole into training, validation or test. A bag's take spans all
of its image topics (an Image topic and its CompressedImage twin show the same moment). Folder
takes come from the file layout (see ``folders.folder_take_key``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .data import Frame, TrainingInputError


@dataclass
class Take:
    source: str
    label: str
    condition: str
    frames: list[Frame] = field(repr=False)
    source_start_ns: int = 0  # bag start record time (0 for folders)
    piece: str = ""  # set when --allow-few-takes cut a take into pieces

    @property
    def timed(self) -> bool:
        return self.frames[0].timed

    @property
    def topics(self) -> list[str]:
        return sorted({f.topic for f in self.frames})

    def describe(self) -> list[dict]:
        """The report's entries for this take: one per image topic of a bag (seconds from the
        bag's start), one per folder take with its file names instead of times."""
        if not self.timed:
            return [{"source": self.source, "topic": "", "label": self.label,
                     "files": [f.topic for f in self.frames]}]
        out = []
        for topic in self.topics:
            times = [f.t_ns for f in self.frames if f.topic == topic]
            out.append({"source": self.source, "topic": topic, "label": self.label,
                        "start": round((min(times) - self.source_start_ns) / 1e9, 3),
                        "end": round((max(times) - self.source_start_ns) / 1e9, 3)})
        return out


def find_takes(frames: Sequence[Frame], starts: Mapping[str, int] | None = None) -> list[Take]:
    """Group frames by (source, take number), in source and time order."""
    starts = starts or {}
    groups: dict[tuple[str, int], list[Frame]] = {}
    for f in sorted(frames, key=lambda f: (f.source, f.take, f.t_ns, f.topic)):
        groups.setdefault((f.source, f.take), []).append(f)
    takes = []
    for (source, _), items in groups.items():
        if len({f.label for f in items}) != 1:  # the readers number takes per label run
            raise TrainingInputError(f"take of {source} holds several labels "
                                     f"{sorted({f.label for f in items})}")
        takes.append(Take(source, items[0].label, items[0].condition, items,
                          starts.get(source, 0)))
    return takes


def takes_per_label(takes: Sequence[Take], labels: Sequence[str]) -> dict[str, int]:
    counts = {label: 0 for label in labels}
    for t in takes:
        if t.label in counts:
            counts[t.label] += 1
    return counts


def cut_into_pieces(takes: Sequence[Take], wanted: int) -> list[Take]:
    """Halve the largest take (by time; twins of one moment stay together) until there are
    ``wanted`` pieces. Pieces of one take are near copies: only for --allow-few-takes."""
    pieces = list(takes)
    while len(pieces) < wanted:
        pieces.sort(key=lambda t: -len({f.t_ns for f in t.frames}))
        big = pieces.pop(0)
        moments = sorted({f.t_ns for f in big.frames})
        if len(moments) < 2:
            raise TrainingInputError(
                f"label '{big.label}' has too few frames ({len(big.frames)}) to cut into "
                f"{wanted} pieces even with --allow-few-takes; record it longer")
        cut = moments[len(moments) // 2]
        tag = big.piece or "1"
        for half, suffix in (([f for f in big.frames if f.t_ns < cut], "a"),
                             ([f for f in big.frames if f.t_ns >= cut], "b")):
            pieces.append(Take(big.source, big.label, big.condition, half, big.source_start_ns,
                               tag + suffix))
    return pieces
