"""Build a place memory from a recorded bag (what ``build_memory`` runs; no ROS graph needed).

Images are read in record order with the bag's pose topic, or /tf + /tf_static, interleaved:
each image's pose is looked up at its own header.stamp, exactly as the node does live, and the
frames go through the node's recorder (keyframe rule, thumbnails, store). With a detector's
boxes (``boxes``: topics, bag_boxes.py) the labelled boxes go through the object recorder too.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..frame_sources import BAG_IMAGE_TYPES, FrameSourceError, bag_image_to_rgb, open_bag
from .errors import PlaceMemoryError
from .bag_boxes import BagBoxes, BoxTopics
from .keyframes import KeyframePolicy, KeyframeSelector
from .object_recorder import ObjectRecorder
from .object_store import open_object_store
from .objects import ObjectMergePolicy
from .pose_buffer import TopicPoseSource
from .pose_messages import POSE_TYPES, pose_sample, stamp_to_ns, transforms
from .recorder import NO_POSE, KeyframeRecorder, Observation, Outcome
from .store import KeyframeStore
from .transforms import TransformTree

logger = logging.getLogger(__name__)

TF_TOPICS = ("/tf", "/tf_static")
EXAMPLES = 3  # reasons kept per kind of skipped message


@dataclass
class BuildReport:
    counts: Counter = field(default_factory=Counter)  # recorder outcomes
    images: int = 0
    pose_samples: int = 0
    unreadable: int = 0
    examples: dict = field(default_factory=dict)  # kind -> first few reasons
    objects: Counter = field(default_factory=Counter)  # object recorder + box pairing counts

    def note(self, kind: str, reason: str) -> None:
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(reason)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            self.counts[o.result] += 1
            if o.result == NO_POSE:
                self.note(NO_POSE, f"{o.observation.camera} @{o.observation.stamp_ns / 1e9:.3f}: "
                                   f"{o.detail}")


def _topics(reader) -> str:
    return ", ".join(f"{n} ({i.msgtype})" for n, i in sorted(reader.topics.items())) or "(none)"


BOX_TYPES = {"boxes": "vision_msgs/msg/Detection2DArray", "depth": "sensor_msgs/msg/Image",
             "camera_info": "sensor_msgs/msg/CameraInfo"}


def _check_box_topics(reader, path, boxes: Optional[BoxTopics]) -> dict[str, str]:
    """topic -> kind ('boxes', 'depth', 'camera_info') of the box topics given."""
    if boxes is None:
        return {}
    if bool(boxes.depth) != bool(boxes.camera_info):
        raise PlaceMemoryError("give both a depth topic and a camera-info topic, or neither")
    out = {}
    for kind, msgtype in BOX_TYPES.items():
        topic = getattr(boxes, kind)
        if not topic:
            continue
        if topic not in reader.topics or reader.topics[topic].msgtype != msgtype:
            raise PlaceMemoryError(f"bag {path}: no {kind} topic '{topic}' ({msgtype}); "
                                   f"topics in the bag: {_topics(reader)}")
        out[topic] = kind
    return out


def _check_topics(reader, path, image_topic: str, pose_topic: Optional[str], use_tf: bool):
    topics = reader.topics
    if image_topic not in topics or topics[image_topic].msgtype not in BAG_IMAGE_TYPES:
        raise PlaceMemoryError(f"bag {path}: no image topic '{image_topic}' "
                               f"({' or '.join(BAG_IMAGE_TYPES)}); topics in the bag: "
                               f"{_topics(reader)}")
    if use_tf:
        if "/tf" not in topics and "/tf_static" not in topics:
            raise PlaceMemoryError(f"bag {path}: --tf needs /tf or /tf_static; topics in the bag: "
                                   f"{_topics(reader)}")
        return [t for t in TF_TOPICS if t in topics]
    if pose_topic not in topics or topics[pose_topic].msgtype not in POSE_TYPES:
        raise PlaceMemoryError(f"bag {path}: no pose topic '{pose_topic}' ({', '.join(POSE_TYPES)})"
                               f"; topics in the bag: {_topics(reader)}")
    return [pose_topic]


def build_from_bag(path: str | os.PathLike, image_topic: str, store: KeyframeStore,
                   encode: Callable[[list[np.ndarray]], np.ndarray], *,
                   pose_topic: Optional[str] = None, use_tf: bool = False,
                   fixed_frame: str = "map", max_pose_gap: float = 0.5,
                   policy: KeyframePolicy = KeyframePolicy(), thumbnail_size: int = 128,
                   batch: int = 16, boxes: Optional[BoxTopics] = None,
                   input_boxes: Optional[Callable] = None,
                   merge: ObjectMergePolicy = ObjectMergePolicy()) -> BuildReport:
    """``encode(list of RGB frames) -> (N, D)`` L2-normalised embeddings (the node's encoder).
    ``boxes`` + ``input_boxes`` (an array message -> InputBoxes): objects too."""
    if use_tf == (pose_topic is not None):
        raise PlaceMemoryError("give exactly one pose source: a pose topic or --tf")
    poses = TransformTree(fixed_frame, max_pose_gap) if use_tf else \
        TopicPoseSource(fixed_frame, max_pose_gap, horizon=1e9)
    recorder = KeyframeRecorder(store, poses, KeyframeSelector(policy), thumbnail_size)
    report = BuildReport()
    waiting: list[tuple[str, int, np.ndarray]] = []
    objects = open_object_store(store) if boxes is not None else None
    paired = BagBoxes(image_topic, boxes, input_boxes, encode) if boxes is not None else None
    object_recorder = ObjectRecorder(objects, poses, merge, thumbnail_size) if objects else None

    def record_objects(frames):
        if frames:
            object_recorder.add([f for f in frames if f.boxes])

    def encode_waiting():
        if waiting:
            emb = np.asarray(encode([rgb for _, _, rgb in waiting]), np.float32)
            report.add(recorder.add([Observation(image_topic, frame, stamp, e, rgb)
                                     for (frame, stamp, rgb), e in zip(waiting, emb)]))
            waiting.clear()

    try:
        reader_cm = open_bag(path)
    except FrameSourceError as exc:
        raise PlaceMemoryError(str(exc)) from exc
    try:
        with reader_cm as reader:
            pose_topics = _check_topics(reader, path, image_topic, pose_topic, use_tf)
            box_kinds = _check_box_topics(reader, path, boxes)
            _read(reader, report, poses, pose_topics, image_topic, use_tf, box_kinds, paired,
                  waiting, encode_waiting, record_objects, batch)
        encode_waiting()
        report.add(recorder.flush())
        if paired is not None:
            record_objects(paired.finish())
            object_recorder.flush()
            report.objects.update(paired.counts)
            report.objects.update(object_recorder.counts)
            report.objects["arrays"] = paired.arrays
            report.objects["objects in the memory"] = objects.count()
    finally:
        if objects is not None:
            objects.close()
    logger.info("%s: %d images, %d pose samples -> %s %s", path, report.images,
                report.pose_samples, dict(report.counts), dict(report.objects))
    return report


def _read(reader, report, poses, pose_topics, image_topic, use_tf, box_kinds, paired, waiting,
          encode_waiting, record_objects, batch) -> None:
    """Every message of the wanted topics in record order: poses into ``poses``, images into
    ``waiting`` (encoded ``batch`` at a time), boxes/depth/camera_info into ``paired``."""
    conns = [c for c in reader.connections
             if c.topic in pose_topics + [image_topic] + list(box_kinds)]
    for conn, t, raw in reader.messages(connections=conns):
        where = f"{conn.topic} @{t / 1e9:.3f}"
        ready = []
        try:
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == image_topic:
                rgb = bag_image_to_rgb(msg, conn.msgtype)
                report.images += 1
                frame, stamp = msg.header.frame_id, stamp_to_ns(msg.header.stamp)
                waiting.append((frame, stamp, rgb))
                if paired is not None:
                    ready = paired.frame(stamp, frame, rgb)
            elif conn.topic in box_kinds:
                kind = box_kinds[conn.topic]
                if kind == "camera_info":
                    paired.camera_info(msg)
                else:
                    ready = getattr(paired, kind)(stamp_to_ns(msg.header.stamp), msg)
            elif use_tf:
                for parent, child, stamp, pose in transforms(msg):
                    poses.add(parent, child, stamp, pose, conn.topic == "/tf_static")
                    report.pose_samples += 1
            else:
                stamp, pose = pose_sample(conn.msgtype, msg)
                poses.add(stamp, pose)
                report.pose_samples += 1
        except PlaceMemoryError as exc:  # a bad quaternion, a pose in another frame, ...
            report.note("pose refused", f"{where}: {exc}")
            continue
        except Exception as exc:  # rosbags raises several types for malformed CDR/ROS1 data
            report.unreadable += 1
            report.note("unreadable", f"{where}: {type(exc).__name__}: {exc}")
            continue
        record_objects(ready)
        if len(waiting) >= batch:
            encode_waiting()
