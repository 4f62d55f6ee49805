"""The place memory on the ROS graph: poses in (a pose topic or tf2), keyframes from the
node's published batches, objects from its labelled boxes (ros/object_memory.py),
~/query_places, ~/query_objects and ~/clear_memory, ~/places/markers for RViz.

All logic is core.memory's; this module subscribes, converts and serves. Keyframes are
recorded on a thread of their own so the pose lookup (tf2 may wait up to memory.tf_timeout)
and the store insert never delay the perception worker; when that thread falls behind, the
oldest waiting frames are dropped and counted.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Optional, Sequence

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ..core.errors import ClipPerceptionError
from ..core.memory import (KeyframeRecorder, KeyframeSelector, ModelIdentity, Observation,
                           PlaceMemoryError, Pose, PoseNotYetKnown, PoseUnavailable,
                           TopicPoseSource, open_store, query_places)
from ..core.memory.pose_messages import pose_sample
from ..core.memory.recorder import NO_POSE
from ..core.memory.settings import MemorySettings
from .object_memory import ObjectMemory
from .place_messages import clear_markers, markers, place_message, pose_message_type
from .diagnostics import OK, WARN, Status
from .throttle import WarningThrottle

QUEUE_BATCHES = 64  # published batches (keyframes or boxes) waiting for the recorder thread
KEYFRAMES, OBJECTS = "keyframes", "objects"
RETRY_PERIOD = 0.05  # s; frames waiting for a pose are retried this often
WARNING_PERIOD = 5.0  # s between warnings of one kind


class Tf2PoseSource:
    """``lookup_transform(fixed_frame, header.frame_id, header.stamp, timeout)`` via tf2_ros
    (every ROS install has it; PyPI has not, so its tests skip in the venv)."""

    def __init__(self, node, fixed_frame: str, timeout: float):
        import tf2_ros  # ImportError: the caller says to use memory.pose_source 'topic'
        from rclpy.duration import Duration

        self.fixed_frame = fixed_frame
        self._timeout = Duration(seconds=timeout)
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)

    def pose_at(self, frame_id: str, stamp_ns: int) -> Pose:
        from rclpy.time import Time

        try:
            t = self.buffer.lookup_transform(self.fixed_frame, frame_id,
                                             Time(nanoseconds=stamp_ns), self._timeout)
        except self._tf2.ExtrapolationException as exc:
            # tf2 says "extrapolation into the future" while the transform may still arrive
            kind = PoseNotYetKnown if "future" in str(exc) else PoseUnavailable
            raise kind(f"tf2: {exc}") from None
        except (self._tf2.LookupException, self._tf2.ConnectivityException) as exc:
            raise PoseUnavailable(f"tf2: {exc}") from None
        tr, r = t.transform.translation, t.transform.rotation
        return Pose((tr.x, tr.y, tr.z), (r.x, r.y, r.z, r.w), self.fixed_frame)

    def describe(self) -> str:
        return f"tf2 into '{self.fixed_frame}'"


class PlaceMemoryInterface:
    """Owned by the node when memory.enabled. ``observe`` is called from the worker thread."""

    def __init__(self, node, settings: MemorySettings, model: ModelIdentity,
                 encode_texts: Callable[[list[str]], np.ndarray],
                 encode_image: Callable[[object], np.ndarray]):
        from clip_perception_msgs.srv import QueryPlaces
        from std_srvs.srv import Trigger
        from visualization_msgs.msg import MarkerArray

        self.node, self.settings = node, settings
        self._encode_texts, self._encode_image = encode_texts, encode_image
        self._log = node.get_logger()
        self._throttle = WarningThrottle(WARNING_PERIOD)
        self.store = open_store(settings.uri, model, settings.collection)
        self.poses = self._pose_source(settings)
        self.recorder = KeyframeRecorder(self.store, self.poses,
                                         KeyframeSelector(settings.policy()),
                                         settings.thumbnail_size)
        self.dropped = 0  # frames the recorder thread had no room for
        self.dropped_boxes = 0  # labelled boxes likewise
        self.last_no_pose = ""  # why the last frame without a pose was not stored
        self.pose_samples_refused = 0
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="place_memory", daemon=True)

        group = MutuallyExclusiveCallbackGroup()  # a query never waits for image intake
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.markers_pub = node.create_publisher(MarkerArray, "~/places/markers", latched)
        self.query_srv = node.create_service(QueryPlaces, "~/query_places", self._on_query,
                                             callback_group=group)
        self.clear_srv = node.create_service(Trigger, "~/clear_memory", self._on_clear,
                                             callback_group=group)
        self.objects = ObjectMemory(node, settings, self.store, self.poses, group,
                                    self._query_embeddings)
        self._thread.start()
        self._log.info(f"place memory: {self.store.count()} keyframes, "
                       f"{self.objects.store.count()} objects in {self.store.where}; "
                       f"poses from {self.poses.describe()}")

    @classmethod
    def for_node(cls, node) -> Optional["PlaceMemoryInterface"]:
        """The node's memory (configure), or None without memory.enabled: queries encoded like
        landmarks; with the node's detection path, its FrameDetections become objects."""
        if not node.settings.memory.enabled:
            return None
        label_sets, cache, encoder = node.label_sets, node._prompt_cache, node.encoder
        preprocessor, converter = node.preprocessor, node.converter
        memory = cls(node, node.settings.memory, ModelIdentity.of(node.clip),
                     lambda t: cache.ensemble(t, label_sets.current.spec.landmark_templates),
                     lambda msg: encoder.encode_images(preprocessor([converter.image_to_rgb(msg)])))
        if node.detections is not None:
            node.detections.sink = memory.observe_detections
            node.detections.keep_crops = node.settings.memory.thumbnail_size > 0
        return memory

    # ---- poses ---------------------------------------------------------------------------------
    def _pose_source(self, s: MemorySettings):
        if s.pose_source == "tf":
            try:
                return Tf2PoseSource(self.node, s.fixed_frame, s.tf_timeout)
            except ImportError as exc:
                raise PlaceMemoryError(f"memory.pose_source 'tf' needs tf2_ros, which does not "
                                       f"import here ({exc}); set memory.pose_source to 'topic' "
                                       f"with memory.pose_topic") from None
        source = TopicPoseSource(s.fixed_frame, s.max_pose_gap)
        msg_class, msgtype = pose_message_type(s.pose_type)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)  # any publisher
        self.pose_sub = self.node.create_subscription(
            msg_class, s.pose_topic, lambda msg: self._on_pose(source, msgtype, msg), qos,
            callback_group=MutuallyExclusiveCallbackGroup())
        return source

    def _on_pose(self, source: TopicPoseSource, msgtype: str, msg) -> None:
        try:
            source.add(*pose_sample(msgtype, msg))
        except PlaceMemoryError as exc:
            self.pose_samples_refused += 1
            self._warn("pose", f"pose sample on {self.settings.pose_topic} refused: {exc}")

    # ---- keyframes (worker thread -> recorder thread) ---------------------------------------
    def observe(self, observations: Sequence[Observation]) -> None:
        """One published batch; never blocks the caller."""
        self._put(KEYFRAMES, list(observations), len(observations))

    def observe_detections(self, frame) -> None:
        """One FrameDetections (labelled boxes of a frame); never blocks the caller."""
        self._put(OBJECTS, [frame], len(frame.boxes))

    def _put(self, kind: str, items: list, frames: int) -> None:
        try:
            self._queue.put_nowait((kind, items))
        except queue.Full:
            if kind == KEYFRAMES:
                self.dropped += frames
            else:
                self.dropped_boxes += frames
            self._warn("queue", f"place memory is behind: {self.dropped} frames and "
                                f"{self.dropped_boxes} boxes dropped so far")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=RETRY_PERIOD)
            except queue.Empty:
                if self.recorder.pending:
                    self._record((KEYFRAMES, []))
                if self.objects.recorder.pending:
                    self._record((OBJECTS, []))
                continue
            for item in self._drain(first):
                self._record(item)

    def _drain(self, first: tuple[str, list]) -> list[tuple[str, list]]:
        """``first`` and whatever else is queued, one batch per kind: what arrived while the
        store was busy is written in one call (a store call costs the same for one row or
        many: ~20 ms per write on Milvus Lite, ~200 ms per fresh search on a server)."""
        batches = {KEYFRAMES: [], OBJECTS: []}
        kind, items = first
        batches[kind] += items
        for _ in range(QUEUE_BATCHES):
            try:
                kind, items = self._queue.get_nowait()
            except queue.Empty:
                break
            batches[kind] += items
        return [(k, v) for k, v in batches.items() if v]

    def _record(self, item: tuple[str, list]) -> None:
        kind, batch = item
        try:
            if kind == OBJECTS:
                self.objects.record(batch)
                return
            outcomes = self.recorder.add(batch)
        except PlaceMemoryError as exc:  # the store refused the insert
            self._warn("store", f"place memory could not store {len(batch)} {kind} "
                                f"batch(es): {exc}")
            return
        except Exception as exc:  # a bug must not end the recorder thread unseen
            self._warn("error", f"place memory failed on {len(batch)} {kind} batch(es): "
                                f"{type(exc).__name__}: {exc}")
            return
        for o in outcomes:
            if o.result == NO_POSE:
                self.last_no_pose = o.detail
                self._warn("no pose", f"frame of {o.observation.camera} not stored: {o.detail}")

    def _warn(self, kind: str, text: str) -> None:
        if self._throttle.allow(kind):
            more = self._throttle.take_suppressed(kind)
            self._log.warning(text + (f" ({more} more since the last warning)" if more else ""))

    # ---- services ------------------------------------------------------------------------------
    def _on_query(self, request, response):
        try:
            queries = self._query_embeddings(request)
            result = query_places(self.store, queries, int(request.k),
                                  float(request.min_separation) or self.settings.min_separation)
        except (ClipPerceptionError, ValueError) as exc:  # bad query, bad image, store error
            self._log.error(f"~/query_places refused: {exc}")
            return response
        response.places = [place_message(p) for p in result.places]
        stamp = self.node.get_clock().now().to_msg()
        self.markers_pub.publish(markers(self.settings.fixed_frame, stamp,
                                         [c.pose for c in result.candidates], result.scores,
                                         result.places))
        return response

    def _query_embeddings(self, request) -> np.ndarray:
        texts = [t for t in request.texts if t.strip()]
        if len(texts) != len(request.texts):
            raise PlaceMemoryError(f"blank entries in texts {list(request.texts)}")
        if texts:
            return self._encode_texts(texts)
        if not request.image.data:
            raise PlaceMemoryError("no query: texts is empty and the image has no data; "
                                   "expected texts or an image")
        return self._encode_image(request.image)

    def _on_clear(self, request, response):
        try:
            n = self.store.clear()
            n_objects = self.objects.clear()
        except PlaceMemoryError as exc:
            response.success, response.message = False, str(exc)
            return response
        self.recorder.reset()
        stamp = self.node.get_clock().now().to_msg()
        self.markers_pub.publish(clear_markers(self.settings.fixed_frame, stamp))
        self.objects.markers_pub.publish(clear_markers(self.settings.fixed_frame, stamp))
        response.success, response.message = True, f"cleared {n} keyframes, {n_objects} objects"
        self._log.info(f"place memory cleared ({n} keyframes, {n_objects} objects)")
        return response

    # ---- diagnostics and shutdown ------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        c = dict(self.recorder.counts)
        c.update(dropped=self.dropped, pose_samples_refused=self.pose_samples_refused,
                 waiting_for_pose=self.recorder.pending, dropped_boxes=self.dropped_boxes)
        c.update(self.objects.counters())
        return c

    def diagnostic_status(self, node_name: str) -> Status:
        """/diagnostics: what happened to the frames since start; WARN while most have no pose."""
        c = self.counters()
        values = tuple((k.replace(" ", "_"), str(v)) for k, v in sorted(c.items()))
        values += (("last no-pose reason", self.last_no_pose or "(none)"),
                   ("last box not recorded", self.objects.last_problem() or "(none)"),
                   ("store", self.store.where), ("poses", self.poses.describe()))
        stored, no_pose = c.get("stored", 0), c.get(NO_POSE, 0)
        if no_pose > stored:
            level, message = WARN, f"most frames have no pose: {self.last_no_pose}"
        else:
            level, message = OK, f"{stored} keyframes stored since start"
        return Status(f"{node_name}: place memory", level, message, self.settings.fixed_frame,
                      values)

    def close(self, timeout: float = 5.0) -> None:
        """Record what is queued, then close the store (a restart finds every keyframe)."""
        self._stop.set()
        self._thread.join(timeout)
        while True:
            try:
                self._record(self._queue.get_nowait())
            except queue.Empty:
                break
        self._log.info(f"place memory closing: {self.counters()}")
        self.objects.close()
        self.store.close()
        self.node.destroy_service(self.query_srv)
        self.node.destroy_service(self.clear_srv)
        # all it made on the node: a lifecycle cleanup + configure makes them again
        self.node.destroy_publisher(self.markers_pub)
        if getattr(self, "pose_sub", None) is not None:
            self.node.destroy_subscription(self.pose_sub)


def observations(results) -> list[Observation]:
    """The node hook's input: one Observation per FrameResult that carries its embedding."""
    from ..core.memory.pose_messages import stamp_to_ns

    out = []
    for r in results:
        if r.embedding is None:
            continue
        header = r.frame.payload.header
        out.append(Observation(r.frame.camera, header.frame_id, stamp_to_ns(header.stamp),
                               r.embedding, r.crop))
    return out
