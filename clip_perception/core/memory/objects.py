"""Objects of the place memory: labelled boxes become observations, observations of one thing
merge into one object.

An observation is one box of one frame (core/detections' ``LabelledBox``): its crop embedding,
its 3D centre moved into the fixed frame at the image's stamp (through the same pose source as
keyframes: the pose of the depth image's optical frame), the camera pose it was seen from, the
box area and a thumbnail of the crop.

Merging (``ObjectMergePolicy``): an observation joins an object when it is **closer than
``distance`` metres AND more alike than ``similarity``** (cosine of its embedding to the
object's mean embedding); of several such objects, the most alike. Both, because either alone
fails a robot: two chairs side by side are alike but apart, a cup on a laptop is close but not
alike. Without depth an observation has no position; it merges only with other objects without
one, by the same similarity and its camera pose (``seen_from``) within ``distance`` of theirs,
so a thing seen without depth is still one object, found through where it was seen from.

The merged object keeps:
- the running mean of its observations' unit embeddings, exact: the stored unit direction and
  the mean's length before normalising give back the sum, the new embedding is added and the
  result renormalised (searches rank by inner product over unit vectors). A mean, not the
  latest view, because a crop seen from one side must still find the object seen from others;
- its position: the mean of the observations that had depth, each weighted once (every view's
  estimate is as good as another's, and the mean shrinks the depth noise);
- ``seen_from``: the camera pose of its largest box (the closest, least cut view: a pose a
  navigation stack can drive to and see it again), with that view's thumbnail and label;
- its observation count and first and last seen stamps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from .errors import PlaceMemoryError
from .geometry import Pose, rotate
from .object_store import MemoryObject
from .thumbnails import encode_thumbnail


@dataclass(frozen=True)
class ObjectMergePolicy:
    distance: float = 0.5  # m: box centres from depth move this much between views
    similarity: float = 0.8  # cosine: views of one thing are more alike than this

    def __post_init__(self):
        if not (math.isfinite(self.distance) and self.distance >= 0):
            raise PlaceMemoryError(f"object merge distance must be >= 0 m, got {self.distance}")
        if not -1.0 <= self.similarity <= 1.0:
            raise PlaceMemoryError(f"object merge similarity must be a cosine in -1..1, got "
                                   f"{self.similarity}")


@dataclass(frozen=True)
class ObjectObservation:
    embedding: np.ndarray  # (D,) float32, unit
    position: Optional[np.ndarray]  # (3,) fixed frame; None without depth
    seen_from: Pose  # camera pose in the fixed frame at the image stamp
    area: float  # box area, pixels
    stamp_ns: int
    camera: str
    label: str = ""
    thumbnail: str = ""


def observe(frame, box, camera_pose: Pose, depth_frame_pose: Optional[Pose],
            thumbnail_size: int) -> ObjectObservation:
    """One LabelledBox of a FrameDetections as an observation. ``camera_pose``: the image's
    frame in the fixed frame; ``depth_frame_pose``: the box position's frame (None when the box
    has no position)."""
    position = None
    if box.position is not None:
        if depth_frame_pose is None:
            raise PlaceMemoryError(f"box {box.id} has a position in '{box.frame_id}' but no "
                                   f"pose of that frame was given")
        p = np.asarray(box.position, np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise PlaceMemoryError(f"box {box.id} position {box.position} is not 3 finite "
                                   f"numbers")
        position = np.add(depth_frame_pose.position, rotate(depth_frame_pose.orientation, p))
    embedding = np.asarray(box.embedding, np.float32)
    thumb = encode_thumbnail(box.crop, thumbnail_size) if box.crop is not None else ""
    _, _, w, h = box.bbox
    best = box.hypotheses or box.source_hypotheses  # the node's label, else the detector's
    label = best[0][0] if best else ""
    return ObjectObservation(embedding, position, camera_pose, float(w) * float(h),
                             int(frame.stamp_ns), frame.camera, label, thumb)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not n > 0:
        raise PlaceMemoryError("an embedding of all zeros has no direction")
    return (np.asarray(v, np.float64) / n).astype(np.float32)


def new_object(obs: ObjectObservation) -> MemoryObject:
    return MemoryObject(
        embedding=_unit(obs.embedding), mean_length=1.0,
        position=None if obs.position is None else np.asarray(obs.position, np.float64),
        positioned=int(obs.position is not None), seen_from=obs.seen_from, seen_area=obs.area,
        observations=1, first_seen_ns=obs.stamp_ns, last_seen_ns=obs.stamp_ns,
        camera=obs.camera, label=obs.label, thumbnail=obs.thumbnail)


def merge(obj: MemoryObject, obs: ObjectObservation) -> MemoryObject:
    """``obj`` with ``obs`` added (see the module text for what each field becomes)."""
    n = obj.observations
    total = np.asarray(obj.embedding, np.float64) * (obj.mean_length * n) + _unit(obs.embedding)
    length = float(np.linalg.norm(total))
    position, positioned = obj.position, obj.positioned
    if obs.position is not None:
        old = np.zeros(3) if position is None else np.asarray(position, np.float64)
        position = (old * positioned + obs.position) / (positioned + 1)
        positioned += 1
    best = obs.area >= obj.seen_area
    return replace(
        obj, embedding=_unit(total), mean_length=length / (n + 1), position=position,
        positioned=positioned, observations=n + 1,
        first_seen_ns=min(obj.first_seen_ns, obs.stamp_ns),
        last_seen_ns=max(obj.last_seen_ns, obs.stamp_ns),
        seen_from=obs.seen_from if best else obj.seen_from,
        seen_area=obs.area if best else obj.seen_area,
        camera=obs.camera if best else obj.camera, label=obs.label if best else obj.label,
        thumbnail=(obs.thumbnail or obj.thumbnail) if best else obj.thumbnail)


def match(obs: ObjectObservation, candidates: Sequence[MemoryObject],
          policy: ObjectMergePolicy) -> Optional[int]:
    """Index of the candidate ``obs`` merges into (closer than the distance AND more alike
    than the similarity; the most alike of those), or None: a new object."""
    best, best_cos = None, -math.inf
    e = _unit(obs.embedding)
    for i, c in enumerate(candidates):
        if (obs.position is None) != (c.position is None):
            continue  # with depth and without are never one object (see the module text)
        where = obs.position if obs.position is not None else np.asarray(obs.seen_from.position)
        there = c.position if c.position is not None else np.asarray(c.seen_from.position)
        if float(np.linalg.norm(np.subtract(where, there))) >= policy.distance:
            continue
        cos = float(np.dot(e, c.embedding))
        if cos > policy.similarity and cos > best_cos:
            best, best_cos = i, cos
    return best
