"""Frames decoded + preprocessed ahead of the encoder, handed out only for the exact frame, and
the rule for when preparing ahead pays (``prepare_ahead``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..devices import cpu_count, is_cuda
from .slots import PendingFrame


def prepare_ahead(encoder, preparation_share: Optional[float] = None) -> tuple[bool, str]:
    """Whether the worker's preparer may decode + preprocess frames during an encode, and why.

    ``preparation_share`` (decode + preprocess per frame over the encoder's busy time per frame,
    as the worker measures it: ``JustInTimePlanner.preparation_share``; None until measured)
    goes into the reason, so /diagnostics shows what overlapping could at most save. Asked per
    preparation: a swapped-in TensorRT engine moves the encoder to the GPU.
    """
    device = str(encoder.device)
    if is_cuda(device):
        return True, f"encoder on {device}; CPU preprocessing overlaps it"
    cores = cpu_count()
    if 0 < encoder.threads < cores:
        return True, f"encoder uses {encoder.threads} of {cores} cores"
    # Measured (docs/results/node.md): beside an encoder that keeps every core busy, the
    # preparer only competes with it for the CPU. In the node it lost even where preparation
    # is 7.6 % of the encode (openvino bf16 on a 2-core Zen 5), so no share turns it on.
    why = f"encoder on {device} uses all {cores} cores"
    if preparation_share is not None:
        why += f"; decode + preprocess are {100 * preparation_share:.1f} % of its time per frame"
    return False, why


@dataclass
class PreparedFrame:
    """A frame after decode + preprocess, or why it could not be."""

    frame: PendingFrame
    crop: Optional[np.ndarray]  # None for a bad frame
    error: str = ""
    decode_seconds: float = 0.0
    preprocess_seconds: float = 0.0
    ahead: bool = False  # prepared by the preparer thread rather than the encoder thread


class PreparedFrames:
    """Preparations made ahead of time: at most one per camera, for one exact frame object.

    The preparer calls ``begin`` then ``finish``; the worker ``claim``s the frames it took. A
    preparation is only ever handed out for the very frame it was made from, so a newer frame
    that replaced it in its slot is never answered with the older frame's crop. Preparations
    that are never claimed (the frame was superseded) are reported to ``on_wasted``.
    """

    def __init__(self, on_wasted: Callable[[str], None] = lambda camera: None):
        self._cond = threading.Condition()
        # camera -> (frame, preparation or None while in progress)
        self._entries: dict[str, tuple[PendingFrame, Optional[PreparedFrame]]] = {}
        self._on_wasted = on_wasted

    def has(self, frame: PendingFrame) -> bool:
        with self._cond:
            entry = self._entries.get(frame.camera)
            return entry is not None and entry[0] is frame

    def begin(self, frame: PendingFrame) -> None:
        with self._cond:
            old = self._entries.get(frame.camera)
            self._entries[frame.camera] = (frame, None)
        if old is not None and old[0] is not frame:
            self._on_wasted(frame.camera)

    def finish(self, prepared: PreparedFrame) -> None:
        frame = prepared.frame
        with self._cond:
            entry = self._entries.get(frame.camera)
            if entry is not None and entry[0] is frame:
                self._entries[frame.camera] = (frame, prepared)
                self._cond.notify_all()

    def claim(self, frame: PendingFrame, timeout: float) -> Optional[PreparedFrame]:
        """The preparation of exactly ``frame`` (waiting for one in progress), else None."""
        wasted = False
        with self._cond:
            entry = self._entries.get(frame.camera)
            if entry is not None and entry[0] is not frame:
                # Made for a frame that was superseded before it could be taken.
                del self._entries[frame.camera]
                entry, wasted = None, True
            if entry is not None:
                self._cond.wait_for(lambda: self._entries.get(frame.camera, (None,))[0]
                                    is not frame or self._entries[frame.camera][1] is not None,
                                    timeout)
                entry = self._entries.get(frame.camera)
                if entry is not None and entry[0] is frame:
                    del self._entries[frame.camera]
                    # None here only if the preparer overran the timeout: prepare it again.
                    result = entry[1]
                else:
                    result = None
            else:
                result = None
        if wasted:
            self._on_wasted(frame.camera)
        return result
