"""Camera intake: subscriptions that only store the newest serialized message per camera.

Why serialized: the executor thread then does one take per message (no Python message built,
no 900 KB ``array.array`` filled for a 640x480 frame) and returns; only the frame the worker
actually encodes is deserialized and converted, in the worker thread. Frames replaced in their
slot by a newer one are never deserialized.

Why a thread of its own (``IntakeSpinner``): rclpy's MultiThreadedExecutor cost 2.6-10 ms of
CPU, mostly in Python threads holding the GIL, per 640x480 message; a SingleThreadedExecutor
that serves only the camera subscriptions ~1.3-1.7 ms (docs/results/node.md). The node's
own executor keeps its services, parameters, timers and other subscriptions, so a slow service
call (e.g. ~/query_places) never holds up frame intake.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import threading

import numpy as np

from ..core.image_decode import FrameDecodeError
from ..core.pipeline import LatestFrameSlots
from .conversions import ImageConverter, image_message_type, image_qos
from .spin import spin_until_shutdown


@dataclass
class SerializedFrame:
    """One camera message as taken from DDS; deserialized at most once, on first use."""
    data: bytes
    msg_type: Any
    _message: Optional[Any] = field(default=None, repr=False)
    _rgb: Optional[np.ndarray] = field(default=None, repr=False)
    _rgb_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rgb(self, convert: Callable[[Any], np.ndarray]) -> np.ndarray:
        """``convert(message)``, run once and kept: a frame whose boxes are labelled is
        decoded once for its crops, its classification and its debug image."""
        with self._rgb_lock:
            if self._rgb is None:
                self._rgb = convert(self.message)
            return self._rgb

    @property
    def message(self):
        if self._message is None:
            from rclpy.serialization import deserialize_message

            try:
                self._message = deserialize_message(self.data, self.msg_type)
            except Exception as exc:  # rclpy raises plain exceptions for bad CDR
                raise FrameDecodeError(
                    f"could not deserialize a {len(self.data)}-byte "
                    f"{self.msg_type.__name__} message: {exc}") from exc
        return self._message

    @property
    def header(self):
        return self.message.header


class IntakeSpinner:
    """A helper node ``<node>_intake`` in the node's namespace, spun by its own
    SingleThreadedExecutor thread; the camera subscriptions live on it.

    Its name is its own under any remapping: it ignores the process-wide arguments
    (``use_global_arguments=False``), because ``launch_ros`` starts the process with
    ``-r __node:=NAME``, which would rename every node of it to NAME: two nodes sharing one
    name, and destroying the helper on deactivate took the main node's /rosout publisher
    (rcl keeps one per node name) with it. Topics are resolved and remapped by the main node
    (``resolve``), so every remapping given to the process or to the main node applies to the
    camera topics exactly as it would on the main node.
    """

    SUFFIX = "_intake"

    def __init__(self, node):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(
            node.get_name() + self.SUFFIX, namespace=node.get_namespace(), context=node.context,
            use_global_arguments=False, start_parameter_services=False)
        self.resolve = node.resolve_topic_name
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(self.node)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._spin, name="frame_intake", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        spin_until_shutdown(self._executor, self.node.context)

    def close(self, timeout: float = 5.0) -> None:
        self._executor.shutdown(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        self.node.destroy_node()


class FrameIntake:
    """Subscribes ``node`` (the ``IntakeSpinner``'s) to every camera topic, as ``resolve``
    names it (the main node's resolution); callbacks put ``SerializedFrame``s in ``slots``.

    ``decode(camera, frame)`` (worker thread) deserializes and converts to HxWx3 uint8 RGB,
    raising ``FrameDecodeError`` for a bad frame; ``header(frame)`` is the source header the
    results copy.
    """

    def __init__(self, node, cameras: Sequence[str], slots: LatestFrameSlots,
                 converter: ImageConverter, reliability: str, depth: int,
                 callback_group=None, resolve: Callable[[str], str] = lambda topic: topic,
                 on_frame: Optional[Callable[[str, SerializedFrame], None]] = None):
        self.slots = slots
        self._on_frame = on_frame  # also sees every frame (the detection path's stamp buffer)
        self.converter = converter
        self._decoders: dict[str, Callable[[Any], np.ndarray]] = {
            topic: converter.for_topic(topic) for topic in cameras}
        qos = image_qos(reliability, depth)
        self.subscriptions = {}
        for topic in cameras:
            msg_type = image_message_type(topic)
            self.subscriptions[topic] = node.create_subscription(
                msg_type, resolve(topic), self._callback(topic, msg_type), qos,
                callback_group=callback_group, raw=True)

    def _callback(self, camera: str, msg_type) -> Callable[[bytes], None]:
        put, observe = self.slots.put, self._on_frame

        def store(data: bytes) -> None:
            frame = SerializedFrame(data, msg_type)
            put(camera, frame)
            if observe is not None:
                observe(camera, frame)
        return store

    def decode(self, camera: str, frame: SerializedFrame) -> np.ndarray:
        return self._decoders[camera](frame.message)

    @staticmethod
    def header(frame: SerializedFrame):
        return frame.header

    def describe(self) -> str:
        return ", ".join(f"{s.topic_name} ({image_message_type(t).__name__})"
                         for t, s in self.subscriptions.items())
