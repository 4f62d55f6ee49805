"""Objects of the place memory on the ROS graph: ~/query_objects and ~/objects/markers; the
labelled boxes (core/detections' FrameDetections) are recorded on the place memory's thread
(ros/memory.py hands them over). All logic is core.memory's."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ..core.errors import ClipPerceptionError
from ..core.memory import PlaceMemoryError
from ..core.memory.object_query import query_objects
from ..core.memory.object_recorder import ObjectRecorder
from ..core.memory.object_store import open_object_store
from ..core.memory.settings import MemorySettings
from .object_messages import object_markers, object_message


class ObjectMemory:
    def __init__(self, node, settings: MemorySettings, keyframes, poses, callback_group,
                 query_embeddings: Callable[[object], np.ndarray]):
        from clip_perception_msgs.srv import QueryObjects
        from visualization_msgs.msg import MarkerArray

        self.node, self.settings = node, settings
        self._log = node.get_logger()
        self._query_embeddings = query_embeddings
        self.store = open_object_store(keyframes)
        self.recorder = ObjectRecorder(self.store, poses, settings.merge_policy(),
                                       settings.thumbnail_size)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.markers_pub = node.create_publisher(MarkerArray, "~/objects/markers", latched)
        self.query_srv = node.create_service(QueryObjects, "~/query_objects", self._on_query,
                                             callback_group=callback_group)

    def record(self, frames: Sequence) -> None:
        """On the place memory's thread. Raises StoreError if the store refuses."""
        self.recorder.add(frames)

    def _on_query(self, request, response):
        try:
            queries = self._query_embeddings(request)
            result = query_objects(self.store, queries, int(request.k))
            everything = list(self.store.iter_objects())
        except (ClipPerceptionError, ValueError) as exc:  # bad query, bad image, store error
            self._log.error(f"~/query_objects refused: {exc}")
            return response
        frame = self.settings.fixed_frame
        response.objects = [object_message(m, frame) for m in result.matches]
        scored = {o.object_id: float(s) for o, s in zip(result.candidates, result.scores)}
        self.markers_pub.publish(object_markers(frame, self.node.get_clock().now().to_msg(),
                                                everything, scored, result.matches))
        return response

    def clear(self) -> int:
        n = self.store.clear()
        self.recorder.reset()
        return n

    def counters(self) -> dict[str, int]:
        c = {k.replace(" ", "_"): v for k, v in self.recorder.counts.items()}
        c["objects_waiting_for_pose"] = self.recorder.pending
        return c

    def last_problem(self) -> str:
        return self.recorder.last_problem

    def close(self) -> None:
        """Before the keyframe store closes (they share its connection)."""
        try:
            self.store.close()
        except PlaceMemoryError as exc:
            self._log.warning(f"object memory could not be sealed on close: {exc}")
        self.node.destroy_service(self.query_srv)
        self.node.destroy_publisher(self.markers_pub)
