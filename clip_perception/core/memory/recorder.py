"""Frames in, keyframes out: pose at the image's own stamp, the keyframe rule, the store.

The node (each published batch) and ``build_memory`` (each bag frame) call the same
``KeyframeRecorder.add``. A frame whose stamp is newer than the newest pose waits (up to
``pending_limit`` frames) and is retried on the next call, because on a live robot the
odometry for a frame often arrives just after the frame; a frame whose stamp cannot be
bracketed within max_pose_gap is not stored and is counted with the reason.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .errors import PoseUnavailable
from .geometry import Pose
from .keyframes import KeyframeSelector
from .pose_buffer import PoseNotYetKnown
from .store import Keyframe, KeyframeStore
from .thumbnails import DEFAULT_SIZE, encode_thumbnail

logger = logging.getLogger(__name__)

STORED, NOT_KEY, NO_POSE, PENDING = "stored", "not a keyframe", "no pose", "waiting for pose"


class PoseSource(Protocol):
    def pose_at(self, frame_id: str, stamp_ns: int) -> Pose:
        """Pose at ``stamp_ns`` in the fixed frame; raises PoseUnavailable."""

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Observation:
    camera: str
    frame_id: str  # the image's header.frame_id
    stamp_ns: int  # the image's header.stamp
    embedding: np.ndarray  # (D,) L2-normalised
    image: np.ndarray  # HxWx3 uint8 RGB, only read for a stored keyframe's thumbnail


@dataclass(frozen=True)
class Outcome:
    observation: Observation
    result: str  # STORED, NOT_KEY, NO_POSE or PENDING
    detail: str = ""  # why (keyframe rule, or why there is no pose)
    keyframe_id: int = 0


class KeyframeRecorder:
    def __init__(self, store: KeyframeStore, poses: PoseSource, selector: KeyframeSelector,
                 thumbnail_size: int = DEFAULT_SIZE, pending_limit: int = 64):
        self.store, self.poses, self.selector = store, poses, selector
        self.thumbnail_size = thumbnail_size
        self._pending: deque[Observation] = deque()
        self._pending_limit = pending_limit
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, observations: Sequence[Observation]) -> list[Outcome]:
        """Decide for the waiting frames, then these (in order); stored ones go in one insert.

        Returns one outcome per frame decided now (waiting frames decided later come back in a
        later call's outcomes). Raises StoreError if the store refuses the insert.
        """
        with self._lock:
            queue = list(self._pending) + list(observations)
            self._pending.clear()
            outcomes, keyframes = [], []
            waiting_cameras: set[str] = set()
            for obs in queue:
                outcome, keyframe = (None, None) if obs.camera in waiting_cameras else \
                    self._decide(obs)  # a camera's frames are decided in stamp order
                if outcome is None or outcome.result == PENDING:
                    self._pending.append(obs)
                    waiting_cameras.add(obs.camera)
                    continue
                outcomes.append(outcome)
                if keyframe is not None:
                    keyframes.append((len(outcomes) - 1, keyframe))
            while len(self._pending) > self._pending_limit:
                old = self._pending.popleft()
                outcomes.append(Outcome(old, NO_POSE, "no pose arrived for it while "
                                        f"{self._pending_limit} later frames waited"))
            ids = self.store.insert([k for _, k in keyframes])
            for (i, _), kid in zip(keyframes, ids):
                outcomes[i] = Outcome(outcomes[i].observation, STORED, outcomes[i].detail, kid)
            self.counts.update(o.result for o in outcomes)
            return outcomes

    def _decide(self, obs: Observation):
        try:
            pose = self.poses.pose_at(obs.frame_id, obs.stamp_ns)
        except PoseNotYetKnown as exc:
            return Outcome(obs, PENDING, str(exc)), None
        except PoseUnavailable as exc:
            return Outcome(obs, NO_POSE, str(exc)), None
        embedding = np.asarray(obs.embedding, np.float32)
        why = self.selector.consider(obs.camera, pose, embedding)
        if why is None:
            return Outcome(obs, NOT_KEY), None
        thumbnail = encode_thumbnail(obs.image, self.thumbnail_size)
        return Outcome(obs, STORED, why), Keyframe(embedding, pose, obs.stamp_ns, obs.camera,
                                                   thumbnail)

    def flush(self) -> list[Outcome]:
        """Decide the waiting frames now (end of a bag): those still without a pose are counted."""
        outcomes = self.add([])
        with self._lock:
            dropped = [Outcome(o, NO_POSE, "no pose at or after its stamp")
                       for o in self._pending]
            self._pending.clear()
            self.counts.update(o.result for o in dropped)
        return outcomes + dropped

    def reset(self) -> None:
        """After the memory was cleared: the next frame of every camera is a keyframe again."""
        with self._lock:
            self.selector.reset()
            self._pending.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)
