"""~/debug_image: the source frame with the top labels and one bar per landmark drawn on it,
and, for a camera with another detector's boxes, each box with its top label and score.

Rendered on a thread of its own from the newest result only (older ones are replaced, never
queued), and only while someone subscribes, so the worker never waits for drawing. The frame
is decoded again here from the message the result carries: a few ms of this thread's time
instead of keeping every decoded frame alive for a viewer that may not exist.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

import cv2
import numpy as np

from ..core.pipeline import FrameResult

MAX_LABELS = 3
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _BAR, _PANEL, _BOX = (255, 255, 255), (80, 200, 255), (0, 0, 0), (60, 230, 60)


def render(rgb: np.ndarray, result: FrameResult, max_labels: int = MAX_LABELS) -> np.ndarray:
    """A copy of ``rgb`` (HxWx3 uint8) with the top labels and landmark bars drawn on it."""
    out = np.ascontiguousarray(rgb).copy()
    height, width = out.shape[:2]
    scale = max(0.3, min(width, height) / 800.0)
    line = max(8, int(28 * scale))
    detections = getattr(result, "detections", None)  # ros.detections.DetectionsView
    if detections is not None:
        draw_boxes(out, detections.boxes, scale)
    lines = [f"{h.label} {h.score:.2f}" for h in result.classification.hypotheses[:max_labels]]
    landmarks = result.landmarks
    rows = len(lines) + len(landmarks)
    if rows == 0:
        return out
    panel_w = min(width, int(420 * scale) + line)
    panel_h = min(height, rows * line + line // 2)
    # Darken the panel area instead of covering it, so the scene stays visible underneath.
    out[:panel_h, :panel_w] = (out[:panel_h, :panel_w] * 0.4).astype(np.uint8)
    y = line + line // 4  # first baseline: room for the glyphs above it
    for text in lines:
        cv2.putText(out, text, (4, y - line // 4), _FONT, scale, _WHITE, 1, cv2.LINE_AA)
        y += line
    best = max((s.score for s in landmarks), default=0.0)
    bar_max = panel_w // 2
    for s in landmarks:
        # Raw cosines of CLIP are small (~0.1-0.35): bars are relative to the best landmark.
        length = int(bar_max * max(s.score, 0.0) / best) if best > 0 else 0
        top = y - line + line // 5
        cv2.rectangle(out, (4, top), (4 + max(length, 1), y - line // 5), _BAR, -1)
        cv2.putText(out, f"{s.label} {s.score:.2f}", (8 + bar_max, y - line // 4), _FONT,
                    scale * 0.8, _WHITE, 1, cv2.LINE_AA)
        y += line
    return out


def draw_boxes(out: np.ndarray, boxes, scale: float) -> None:
    """Each LabelledBox's rectangle with '<top label> <score>' above it, in place."""
    height, width = out.shape[:2]
    for box in boxes:
        cx, cy, w, h = box.bbox
        x0, y0 = int(round(max(0, cx - w / 2))), int(round(max(0, cy - h / 2)))
        x1, y1 = int(round(min(width - 1, cx + w / 2))), int(round(min(height - 1, cy + h / 2)))
        cv2.rectangle(out, (x0, y0), (x1, y1), _BOX, max(1, int(2 * scale)))
        text = f"{box.label} {box.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, _FONT, scale * 0.8, 1)
        top = y0 - th - base - 2 if y0 - th - base - 2 >= 0 else min(y0 + 1, height - th - base)
        cv2.rectangle(out, (x0, top), (min(width - 1, x0 + tw + 4), top + th + base + 2), _BOX,
                      -1)
        cv2.putText(out, text, (x0 + 2, top + th + 1), _FONT, scale * 0.8, _PANEL, 1,
                    cv2.LINE_AA)


class DebugImageRenderer:
    """Renders the newest offered result on its own thread and hands the image to ``publish``.

    ``wanted()`` (someone subscribes) is asked before each offer; ``decode(result)`` gives the
    frame's RGB; ``publish(rgb, result)`` sends it. Errors are reported to ``on_error`` and the
    thread keeps going.
    """

    def __init__(self, wanted: Callable[[], bool], decode: Callable[[FrameResult], np.ndarray],
                 publish: Callable[[np.ndarray, FrameResult], None],
                 on_error: Callable[[str], None]):
        self._wanted, self._decode, self._publish, self._on_error = \
            wanted, decode, publish, on_error
        self._lock = threading.Lock()
        self._ready = threading.Event()  # set: a result is waiting, or closing
        self._latest: Optional[FrameResult] = None
        self._closed = False
        self.rendered = 0
        self._thread = threading.Thread(target=self._run, name="debug_image", daemon=True)
        self._thread.start()

    def offer(self, results: list[FrameResult]) -> None:
        """Called by the worker after publishing a batch: constant time, never blocks."""
        if not results or not self._wanted():
            return
        with self._lock:
            self._latest = results[-1]  # replaces one not drawn yet: only the newest matters
        self._ready.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        self._ready.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while self._ready.wait() and not self._closed:
            with self._lock:
                result, self._latest = self._latest, None
                self._ready.clear()
            if result is None:
                continue
            try:
                image = render(self._decode(result), result)
                self._publish(image, result)
                self.rendered += 1
            except Exception as exc:  # a viewer's image must never stop the node
                self._on_error(f"debug image failed: {type(exc).__name__}: {exc}")
