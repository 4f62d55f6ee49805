"""Labelled boxes in, objects out: poses at the image stamp, observations, merging, the store.

The node (each FrameDetections its detections sink hands over) and ``build_memory`` (each
bag frame with boxes) call the same ``ObjectRecorder.add``. Per call the store is asked twice
at most and written once, whatever the number of boxes: one search for the candidates of the
observations with a position (nearest by embedding among the objects inside the bounding box
of all of them, widened by the merge distance: a Milvus filter), one for those without (by
the camera pose they were seen from), then one upsert of every new and merged object. Boxes of
one call merge with each other too (two frames of one object in one batch are one object).

A frame whose stamp is newer than the newest pose waits (up to ``pending_limit`` frames) and
is retried on the next call, as keyframes do; one whose pose cannot be had is counted.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import replace
from typing import Sequence

import numpy as np

from .errors import PlaceMemoryError, PoseUnavailable
from .object_store import MemoryObject, ObjectStore, box_filter
from .objects import ObjectMergePolicy, ObjectObservation, match, merge, new_object, observe
from .pose_buffer import PoseNotYetKnown
from .thumbnails import DEFAULT_SIZE

logger = logging.getLogger(__name__)

NEW, MERGED, NO_POSE, REFUSED = "new objects", "merged observations", "boxes without pose", \
    "boxes refused"
CANDIDATES = 16  # nearest objects fetched per observation (inside the box filter)


class ObjectRecorder:
    def __init__(self, store: ObjectStore, poses, policy: ObjectMergePolicy = ObjectMergePolicy(),
                 thumbnail_size: int = DEFAULT_SIZE, pending_limit: int = 64):
        self.store, self.poses, self.policy = store, poses, policy
        self.thumbnail_size = thumbnail_size
        self._pending: deque = deque()
        self._pending_limit = pending_limit
        self.counts: Counter = Counter()
        self.last_problem = ""  # why the last box was not recorded
        self._lock = threading.Lock()

    def add(self, frames: Sequence) -> list[MemoryObject]:
        """Record these FrameDetections (and the ones waiting for a pose); returns the objects
        written. Raises StoreError if the store refuses."""
        with self._lock:
            queue = list(self._pending) + list(frames)
            self._pending.clear()
            observations: list[ObjectObservation] = []
            waiting: set[str] = set()
            for frame in queue:
                if frame.camera in waiting:  # a camera's frames in stamp order
                    self._pending.append(frame)
                    continue
                got = self._observe(frame)
                if got is None:
                    self._pending.append(frame)
                    waiting.add(frame.camera)
                else:
                    observations += got
            while len(self._pending) > self._pending_limit:
                old = self._pending.popleft()
                self._lost(old, NO_POSE, f"no pose arrived while {self._pending_limit} later "
                                         f"frames waited")
            return self._record(observations)

    def flush(self) -> list[MemoryObject]:
        """Record the waiting frames now (end of a bag); those still without a pose are
        counted."""
        written = self.add([])
        with self._lock:
            for frame in self._pending:
                self._lost(frame, NO_POSE, "no pose at or after its stamp")
            self._pending.clear()
        return written

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # ---- steps ---------------------------------------------------------------------------------
    def _lost(self, frame, kind: str, why: str) -> None:
        self.counts[kind] += len(frame.boxes)
        self.last_problem = f"{frame.camera} @{frame.stamp_ns / 1e9:.3f}: {why}"

    def _observe(self, frame):
        """The frame's observations, or None while its pose is not known yet."""
        if not frame.boxes:
            return []
        try:
            camera = self.poses.pose_at(frame.frame_id, frame.stamp_ns)
            depth_poses = {b.frame_id: self.poses.pose_at(b.frame_id, frame.stamp_ns)
                           for b in frame.boxes if b.position is not None}
        except PoseNotYetKnown:
            return None
        except PoseUnavailable as exc:
            self._lost(frame, NO_POSE, str(exc))
            return []
        out = []
        for box in frame.boxes:
            try:
                out.append(observe(frame, box, camera, depth_poses.get(box.frame_id),
                                   self.thumbnail_size))
            except PlaceMemoryError as exc:
                self.counts[REFUSED] += 1
                self.last_problem = f"{frame.camera} @{frame.stamp_ns / 1e9:.3f}: {exc}"
        return out

    def _candidates(self, observations: list[ObjectObservation]) -> list[MemoryObject]:
        found: dict[int, MemoryObject] = {}
        for positioned in (True, False):
            group = [o for o in observations if (o.position is not None) == positioned]
            if not group:
                continue
            where = np.array([o.position if positioned else o.seen_from.position
                              for o in group], np.float64)
            d = self.policy.distance
            hits = self.store.search(np.stack([o.embedding for o in group]), CANDIDATES,
                                     box_filter(where.min(axis=0) - d, where.max(axis=0) + d,
                                                positioned), fresh=True)
            for per_obs in hits:
                for obj in per_obs:
                    found.setdefault(obj.object_id, obj)
        return list(found.values())

    def _record(self, observations: list[ObjectObservation]) -> list[MemoryObject]:
        if not observations:
            return []
        objects = self._candidates(observations)  # without thumbnails: a search returns
        stored = {o.object_id for o in objects}  # up to CANDIDATES rows per observation
        changed: set[int] = set()  # indices into objects
        merged = 0
        for obs in observations:
            i = match(obs, objects, self.policy)
            if i is None:
                objects.append(new_object(obs).with_id())
                changed.add(len(objects) - 1)
            else:
                objects[i] = merge(objects[i], obs)
                changed.add(i)
                merged += 1
        out = [objects[i] for i in sorted(changed)]
        # an upsert rewrites the whole row: merged objects whose best view stayed keep theirs
        keep = [o.object_id for o in out if o.object_id in stored and not o.thumbnail]
        if keep:
            thumbs = self.store.thumbnails(keep)
            out = [replace(o, thumbnail=thumbs.get(o.object_id, "")) if o.object_id in thumbs
                   else o for o in out]
        written = self.store.upsert(out)
        self.counts[MERGED] += merged
        self.counts[NEW] += len(observations) - merged
        return written
