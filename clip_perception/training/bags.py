"""Read labelled image frames from rosbags (rosbag2 mcap/sqlite3 folders, ROS 1 .bag files).

Two passes per bag: ``scan_bag`` reads record times and labels only (no image is decoded), so
subsampling decides which frames to keep before any decoding; ``decode_bag`` then decodes just
those. Frame times are the bag's record times, the clock the label topic is recorded on too.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable, Iterable, Sequence

import numpy as np

from ..core.frame_sources import (BAG_IMAGE_TYPES as IMAGE_TYPES, FrameSourceError,
                                  bag_image_to_rgb, open_bag)
from ..core.image_decode import FrameDecodeError
from .data import Candidate, Frame, ReadStats, TrainingInputError
from .labels import IntervalLabels, LabelTrack, TakeCounter, bag_name

logger = logging.getLogger(__name__)

STRING_TYPE = "std_msgs/msg/String"


def _open(path: str | os.PathLike):
    try:
        return open_bag(path)
    except FrameSourceError as exc:
        raise TrainingInputError(str(exc)) from exc


def _describe_topics(reader) -> str:
    return ", ".join(f"{name} ({info.msgtype})" for name, info in sorted(reader.topics.items())) \
        or "(none)"


def _image_connections(reader, path, topics: Sequence[str]):
    if not topics:
        raise TrainingInputError("no image topic given; expected at least one --topic")
    existing = reader.topics
    missing = [t for t in topics if t not in existing]
    if missing:
        raise TrainingInputError(f"bag {path} has no topic(s) {missing}; topics in the bag: "
                                 f"{_describe_topics(reader)}")
    wrong = [f"{t} ({existing[t].msgtype})" for t in topics if existing[t].msgtype not in IMAGE_TYPES]
    if wrong:
        raise TrainingInputError(f"bag {path}: topic(s) {wrong} are not images; expected "
                                 f"{' or '.join(IMAGE_TYPES)}")
    return [c for c in reader.connections if c.topic in topics]


def _string_topic(reader, path, topic: str, role: str):
    info = reader.topics.get(topic)
    if info is None:
        raise TrainingInputError(f"bag {path} has no {role} topic '{topic}'; topics in the bag: "
                                 f"{_describe_topics(reader)}")
    if info.msgtype != STRING_TYPE:
        raise TrainingInputError(f"bag {path}: {role} topic '{topic}' is {info.msgtype}, "
                                 f"expected {STRING_TYPE}")
    return [c for c in reader.connections if c.topic == topic]


def scan_bag(path: str | os.PathLike, topics: Sequence[str], *,
             intervals: IntervalLabels | None = None, label_topic: str | None = None,
             stats: ReadStats | None = None, condition: str = "",
             condition_topic: str | None = None, starts: dict | None = None) -> list[Candidate]:
    """Labelled frame candidates of ``path`` (unlabelled frames are skipped and counted), each
    numbered by its take and named by its lighting condition: ``condition_topic``'s current
    value when it has one, else ``condition``. ``starts`` receives the bag's start time (ns)."""
    if (intervals is None) == (label_topic is None):
        raise TrainingInputError("bag frames need exactly one labelling source: an intervals "
                                 "file or a label topic")
    stats = stats if stats is not None else ReadStats()
    name = bag_name(path)
    out: list[Candidate] = []
    with _open(path) as reader:
        conns = _image_connections(reader, path, topics)
        tracks = {}  # topic -> LabelTrack of the String topics read alongside the images
        for topic, role in ((label_topic, "label"), (condition_topic, "condition")):
            if topic is not None:
                conns = conns + _string_topic(reader, path, topic, role)
                tracks[topic] = LabelTrack()
        start = reader.start_time
        if starts is not None:
            starts[str(path)] = int(start)
        takes = TakeCounter()
        for conn, t, raw in reader.messages(connections=conns):
            if conn.topic in tracks:
                try:
                    tracks[conn.topic].update(reader.deserialize(raw, conn.msgtype).data)
                except Exception as exc:  # a corrupt String message: count it, keep the old value
                    stats.add_corrupt(f"{path} {conn.topic} @{t}", f"undeserialisable String: {exc}")
                continue
            stats.messages_seen += 1
            if label_topic is not None:
                label, run = tracks[label_topic].current, tracks[label_topic].changes
            else:
                found = intervals.interval_at(name, t - start)
                label, run = (None, None) if found is None else (found[1], found[0])
            if label is None:
                stats.unlabelled += 1
                continue
            cond = condition
            cond_run = None
            if condition_topic is not None:
                cond = tracks[condition_topic].current or condition
                cond_run = tracks[condition_topic].changes
            out.append(Candidate(str(path), conn.topic, int(t), label, condition=cond,
                                 take=takes.number((run, cond_run))))
    return out


def decode_bag(path: str | os.PathLike, selected: Iterable[Candidate],
               prepare: Callable[[np.ndarray], np.ndarray], *, stats: ReadStats | None = None,
               progress=None) -> list[Frame]:
    """Decode the ``selected`` candidates of ``path`` into frames (crops made by ``prepare``).

    A message that cannot be deserialised or decoded is skipped and counted in ``stats``.
    ``progress`` (a tqdm bar or None) is advanced once per selected candidate.
    """
    stats = stats if stats is not None else ReadStats()
    wanted = {(c.topic, c.t_ns): c for c in selected if c.source == str(path)}
    frames: list[Frame] = []
    if not wanted:
        return frames
    topics = sorted({topic for topic, _ in wanted})
    with _open(path) as reader:
        for conn, t, raw in reader.messages(connections=_image_connections(reader, path, topics)):
            cand = wanted.pop((conn.topic, int(t)), None)
            if cand is None:
                continue
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                rgb = bag_image_to_rgb(msg, conn.msgtype)
                crop = prepare(rgb)
            except FrameDecodeError as exc:
                stats.add_corrupt(f"{path} {conn.topic} @{t}", str(exc))
            except Exception as exc:  # rosbags raises several types for malformed CDR/ROS1 data
                stats.add_corrupt(f"{path} {conn.topic} @{t}",
                                  f"undeserialisable message ({type(exc).__name__}: {exc})")
            else:
                digest = hashlib.blake2b(bytes(raw), digest_size=16).hexdigest()
                frames.append(Frame.of(cand, digest, crop))
            if progress is not None:
                progress.update(1)
    if wanted:  # two messages with the same topic and record time: only the first is used
        logger.warning("%s: %d selected frames were not found on the second pass", path, len(wanted))
    return frames
