"""The node's ``memory.*`` settings, validated once (startup); the ROS parameter table in
ros/parameters.py declares them and calls ``MemorySettings.from_values``."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..errors import SettingError
from .errors import PlaceMemoryError
from .keyframes import KeyframePolicy
from .objects import ObjectMergePolicy
from .pose_messages import POSE_TYPE_NAMES
from .store import DEFAULT_COLLECTION, DEFAULT_URI
from .thumbnails import DEFAULT_SIZE

POSE_SOURCES = ("tf", "topic")
PREFIX = "memory."


class MemorySettingsError(PlaceMemoryError, SettingError):
    """``parameter`` names the memory.* parameter, ``reason`` says what was wrong."""


@dataclass(frozen=True)
class MemorySettings:
    enabled: bool = False
    uri: str = DEFAULT_URI
    collection: str = DEFAULT_COLLECTION
    fixed_frame: str = "map"
    pose_source: str = "tf"
    pose_topic: str = "/odom"
    pose_type: str = "odometry"
    max_pose_gap: float = 0.2
    tf_timeout: float = 0.05
    min_distance: float = KeyframePolicy.min_distance
    min_angle: float = KeyframePolicy.min_angle
    novelty: float = KeyframePolicy.novelty
    min_separation: float = 1.0
    thumbnail_size: int = DEFAULT_SIZE
    object_merge_distance: float = ObjectMergePolicy.distance
    object_merge_similarity: float = ObjectMergePolicy.similarity

    def __post_init__(self):
        def bad(name, reason):
            raise MemorySettingsError(PREFIX + name, reason)

        if self.pose_source not in POSE_SOURCES:
            bad("pose_source", f"got '{self.pose_source}', expected one of {', '.join(POSE_SOURCES)}")
        if self.pose_type not in POSE_TYPE_NAMES:
            bad("pose_type", f"got '{self.pose_type}', expected one of {', '.join(POSE_TYPE_NAMES)}")
        if self.pose_source == "topic" and not self.pose_topic.strip():
            bad("pose_topic", "is empty but memory.pose_source is 'topic'")
        for name in ("fixed_frame", "collection"):
            if not getattr(self, name).strip():
                bad(name, "is empty")
        if not self.collection.replace("_", "").isalnum():
            bad("collection", f"got '{self.collection}', expected letters, digits and '_'")
        for name in ("max_pose_gap", "tf_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                bad(name, f"got {value}, expected > 0 seconds")
        if not (math.isfinite(self.min_separation) and self.min_separation >= 0):
            bad("min_separation", f"got {self.min_separation}, expected >= 0 metres")
        if not 0 <= self.thumbnail_size <= 1024:
            bad("thumbnail_size", f"got {self.thumbnail_size}, expected 0 (none)..1024 px")
        try:
            self.policy()
        except PlaceMemoryError as exc:
            name, _, reason = str(exc).partition(" ")
            bad(name, reason)
        if not (math.isfinite(self.object_merge_distance) and self.object_merge_distance >= 0):
            bad("object_merge_distance", f"got {self.object_merge_distance}, expected >= 0 metres")
        if not -1.0 <= self.object_merge_similarity <= 1.0:
            bad("object_merge_similarity", f"got {self.object_merge_similarity}, expected a "
                                           f"cosine in -1..1")

    def policy(self) -> KeyframePolicy:
        return KeyframePolicy(self.min_distance, self.min_angle, self.novelty)

    def merge_policy(self) -> ObjectMergePolicy:
        return ObjectMergePolicy(self.object_merge_distance, self.object_merge_similarity)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "MemorySettings":
        """From ``{"memory.enabled": ..., ...}`` (every field must be there)."""
        kwargs = {}
        for f in fields(cls):
            name = PREFIX + f.name
            if name not in values:
                raise MemorySettingsError(name, "not set")
            value = values[name]
            kwargs[f.name] = value.strip() if isinstance(value, str) else value
        return cls(**kwargs)
