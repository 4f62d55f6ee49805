"""Camera intake: subscriptions that only store the newest serialized message per camera.

Why serialized: the executor thread then does one take per message (no Python message built,
no 900 KB ``array.array`` filled for a 640x480 frame) and returns; only the frame the worker
actually encodes is deserialized and converted, in the worker thread. Frames replaced in their
slot by a newer one are never deserialized. Measured per 640x480 message at 30 Hz
(benchmarks/NODE_RESULTS.md): this plus the allocator thresholds and a single-threaded
executor took the executor's CPU from ~4-10 ms to ~1.3 ms per message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core.image_decode import FrameDecodeError
from ..core.pipeline import LatestFrameSlots
from .conversions import ImageConverter, image_message_type, image_qos


@dataclass
class SerializedFrame:
    """One camera message as taken from DDS; deserialized at most once, on first use."""
    data: bytes
    msg_type: Any
    _message: Optional[Any] = field(default=None, repr=False)

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


class FrameIntake:
    """Subscribes ``node`` to every camera topic; callbacks put ``SerializedFrame``s in ``slots``.

    ``decode(camera, frame)`` (worker thread) deserializes and converts to HxWx3 uint8 RGB,
    raising ``FrameDecodeError`` for a bad frame; ``header(frame)`` is the source header the
    results copy.
    """

    def __init__(self, node, cameras: Sequence[str], slots: LatestFrameSlots,
                 converter: ImageConverter, reliability: str, depth: int,
                 callback_group=None):
        self.slots = slots
        self.converter = converter
        self._decoders: dict[str, Callable[[Any], np.ndarray]] = {
            topic: converter.for_topic(topic) for topic in cameras}
        qos = image_qos(reliability, depth)
        self.subscriptions = {}
        for topic in cameras:
            msg_type = image_message_type(topic)
            self.subscriptions[topic] = node.create_subscription(
                msg_type, topic, self._callback(topic, msg_type), qos,
                callback_group=callback_group, raw=True)

    def _callback(self, camera: str, msg_type) -> Callable[[bytes], None]:
        put = self.slots.put

        def store(data: bytes) -> None:
            put(camera, SerializedFrame(data, msg_type))
        return store

    def decode(self, camera: str, frame: SerializedFrame) -> np.ndarray:
        return self._decoders[camera](frame.message)

    @staticmethod
    def header(frame: SerializedFrame):
        return frame.header

    def describe(self) -> str:
        return ", ".join(f"{s.topic_name} ({image_message_type(t).__name__})"
                         for t, s in self.subscriptions.items())
