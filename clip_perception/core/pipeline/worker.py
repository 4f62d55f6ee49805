"""The worker: decode -> preprocess -> encode (one call per batch) -> score -> publish.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from ..scoring import Classification, LabelScore
from ..vocabulary import LabelSet
from .pacing import JustInTimePlanner, RateLimiter
from .preparation import PreparedFrame, PreparedFrames
from .slots import LatestFrameSlots, PendingFrame
from .landmark_smoothing import LandmarkSmoother
from .stats import PipelineStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    frame: PendingFrame
    classification: Classification
    landmarks: tuple[LabelScore, ...]  # in label_set.landmarks order
    label_set_version: int
    # What the place memory stores (issue 12): the image embedding and the SxS crop CLIP saw.
    embedding: Optional[np.ndarray] = None
    crop: Optional[np.ndarray] = None


class CompanionBatch(Protocol):
    """Rows encoded in the same engine call as a batch's frames (e.g. detection crops)."""
    inputs: Sequence[np.ndarray]  # (S, S, 3) uint8 each, preprocessed like a frame

    def finish(self, embeddings: np.ndarray, label_set: LabelSet) -> None: ...

    def fail(self, reason: str) -> None: ...


class BatchCompanion(Protocol):
    """``take(label_set)``: rows to add to the next batch, or None; never raises.
    ``waiting()``: something to encode even without a frame."""

    def take(self, label_set: LabelSet) -> Optional[CompanionBatch]: ...

    def waiting(self) -> bool: ...

    def attach(self, wake: Callable[[], None]) -> None:
        """``wake()`` makes the worker look for work now (called when rows become ready)."""


class PerceptionWorker:
    """decode -> preprocess -> encode (one call per batch) -> score -> publish.

    ``decode(camera, payload) -> HxWx3 uint8 RGB`` raises for a bad frame; ``preprocess(rgb) -> (S,S,3)``
    crops one frame; ``normalize((N,S,S,3)) -> (N,3,S,S)``; ``encode(batch) -> (N,D)``;
    ``publish(results)`` gets one batch's results. ``on_bad_frame(camera, reason)`` and
    ``on_error(reason)`` let the caller log (rate-limited); nothing raised by a frame or a stage
    stops the loop.

    With ``prepare_ahead`` a second thread decodes + preprocesses the waiting frames just in
    time for the next batch (see ``JustInTimePlanner``); the worker still takes the newest frame
    per camera when it is free and prepares anything not prepared for exactly that frame itself.
    It pays only when the encoder leaves CPU idle (GPU encoders, or fewer encoder threads than
    cores); an encoder that keeps every core busy just loses time to it (docs/results/node.md).
    ``prepare_ahead`` may be a callable, asked again before every preparation, for encoders
    that move between CPU and GPU (a TensorRT engine swapped in). ``batch_limit``, asked before
    every take, caps the batch below ``max_batch`` (1 for an encoder that runs frames one at a
    time: batching would only make each camera's result wait for the others'); None = no cap.
    ``companion`` (detection crops) adds rows to a batch: encoded in the same call after the
    frames, handed back with ``finish`` after the frames are published; its rows may be the
    whole batch when no frame waits (it wakes the worker with ``slots.wake``).
    """

    CLAIM_TIMEOUT = 2.0  # s; a preparation in progress takes ~ms; past this, redo it here

    def __init__(self, slots: LatestFrameSlots, stats: PipelineStats,
                 label_sets: Callable[[], LabelSet],
                 decode: Callable[[str, Any], np.ndarray],
                 preprocess: Callable[[np.ndarray], np.ndarray],
                 normalize: Callable[[np.ndarray], np.ndarray],
                 encode: Callable[[np.ndarray], np.ndarray],
                 publish: Callable[[list[FrameResult]], None], max_batch: int = 8,
                 max_rate_hz: float = 0.0,
                 on_bad_frame: Callable[[str, str], None] = lambda camera, reason: None,
                 on_error: Callable[[str], None] = lambda reason: None,
                 prepare_ahead: "bool | Callable[[], bool]" = True,
                 planner: Optional[JustInTimePlanner] = None,
                 batch_limit: Callable[[], Optional[int]] = lambda: None,
                 companion: Optional["BatchCompanion"] = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.slots, self.stats = slots, stats
        self._label_sets = label_sets
        self._decode, self._preprocess, self._normalize = decode, preprocess, normalize
        self._encode, self._publish = encode, publish
        self.max_batch = max_batch
        self._batch_limit = batch_limit
        self.rate = RateLimiter(max_rate_hz)
        self.smoother = LandmarkSmoother()
        self._on_bad_frame, self._on_error = on_bad_frame, on_error
        self._prepare_ahead = prepare_ahead if callable(prepare_ahead) else \
            (lambda: bool(prepare_ahead))
        self._preparer_wanted = callable(prepare_ahead) or bool(prepare_ahead)
        self.planner = planner or JustInTimePlanner()
        self.prepared = PreparedFrames(stats.preparation_wasted)
        self._companion = companion
        if companion is not None:
            companion.attach(slots.wake)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._preparer: Optional[threading.Thread] = None

    @property
    def max_rate_hz(self) -> float:
        return self.rate.max_rate_hz

    @max_rate_hz.setter
    def max_rate_hz(self, value: float) -> None:
        self.rate.max_rate_hz = float(value)

    @property
    def batch_size(self) -> int:
        """Frames the next take may hold: ``max_batch``, capped by ``batch_limit``."""
        limit = self._batch_limit()
        return self.max_batch if limit is None else max(1, min(self.max_batch, limit))

    @property
    def alive(self) -> bool:
        """The worker thread runs (False before start, after stop, or if it died)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="perception_worker", daemon=True)
        self._thread.start()
        self._start_preparer_if_wanted()

    def _start_preparer_if_wanted(self) -> None:
        # Started only once preparing ahead is wanted (e.g. when a TensorRT engine has been
        # swapped in): with a CPU encoder on every core the worker runs exactly as without it.
        if (self._preparer is None and self._preparer_wanted and not self._stop.is_set()
                and self._prepare_ahead()):
            self._preparer = threading.Thread(target=self._run_preparer,
                                              name="frame_preparer", daemon=True)
            self._preparer.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.slots.close()
        for thread in (self._thread, self._preparer):
            if thread is not None:
                thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Wait for the rate turn BEFORE taking frames, so the batch holds the newest ones.
            delay = self.rate.delay()
            if delay > 0 and self._stop.wait(delay):
                return
            frames = self.slots.take(self.batch_size, timeout=0.2)
            if frames or (self._companion is not None and self._companion.waiting()):
                self.rate.started()
                self.process(frames)
                self._start_preparer_if_wanted()

    def _run_preparer(self) -> None:
        """Prepare waiting frames once the planner says the next batch is due soon."""
        while not self._stop.is_set():
            seen = self.slots.changes  # read before looking, so no change is missed
            todo = [f for f in self.slots.peek(self.batch_size) if not self.prepared.has(f)]
            at = self.planner.prepare_at(len(todo)) if todo and self._prepare_ahead() else None
            if at is not None:
                wait = at - self.planner.now()
                if wait <= 0:
                    # One frame, then look again: a newer frame may have arrived meanwhile.
                    self.prepared.begin(todo[0])
                    self.prepared.finish(self._prepare_frame(todo[0], ahead=True))
                    continue
            else:
                wait = 0.5  # nothing due: sleep until a frame arrives or the worker starts
            self.slots.wait_for_change(seen, wait)

    def _prepare_frame(self, frame: PendingFrame, ahead: bool) -> PreparedFrame:
        t0 = time.perf_counter()
        try:
            rgb = self._decode(frame.camera, frame.payload)
            t1 = time.perf_counter()
            crop = self._preprocess(rgb)
            t2 = time.perf_counter()
        except Exception as exc:  # a bad frame never stops the node
            return PreparedFrame(frame, None, str(exc) or type(exc).__name__, ahead=ahead)
        self.planner.frame_prepared(t2 - t0)
        return PreparedFrame(frame, crop, "", t1 - t0, t2 - t1, ahead)

    def process(self, frames: Sequence[PendingFrame]) -> list[FrameResult]:
        """Run one batch synchronously (the worker loop calls this; so can benchmarks)."""
        label_set = self._label_sets()  # read once: the whole batch uses one label set
        crops, kept, ahead = [], [], 0
        for frame in frames:
            prepared = self.prepared.claim(frame, self.CLAIM_TIMEOUT)
            if prepared is None:
                prepared = self._prepare_frame(frame, ahead=False)
            if prepared.crop is None:
                self.stats.frame_rejected(frame.camera, prepared.error)
                self._on_bad_frame(frame.camera, prepared.error)
                continue
            self.stats.stage("decode", prepared.decode_seconds)
            self.stats.stage("preprocess", prepared.preprocess_seconds)
            crops.append(prepared.crop)
            kept.append(frame)
            ahead += prepared.ahead
        extra = self._companion.take(label_set) if self._companion is not None else None
        if not kept and extra is None:
            return []
        self.stats.frames_prepared_ahead(ahead)
        self.planner.batch_started(len(kept), self.rate.next_start())
        self.slots.poke()  # the preparer re-plans for this batch
        try:
            return self._encode_score_publish(kept, crops, label_set, extra)
        finally:
            self.planner.batch_finished()

    def _encode_score_publish(self, kept: list[PendingFrame], crops: list[np.ndarray],
                              label_set: LabelSet,
                              extra: Optional["CompanionBatch"] = None) -> list[FrameResult]:
        cameras = [f.camera for f in kept]
        rows = list(crops) + (list(extra.inputs) if extra is not None else [])
        try:
            t0 = time.perf_counter()
            embeddings = self._encode(self._normalize(np.stack(rows)))
            t1 = time.perf_counter()
            results = self._score(kept, embeddings[:len(kept)], label_set, crops)
            t2 = time.perf_counter()
        except Exception as exc:
            reason = f"inference failed for {len(kept)} frame(s): {type(exc).__name__}: {exc}"
            logger.debug("pipeline error", exc_info=True)
            if kept:
                self.stats.frames_failed(cameras, reason)
            if extra is not None:
                extra.fail(reason)
            self._on_error(reason)
            return []
        try:
            if results:
                self._publish(results)
            if extra is not None:  # its own errors are its own (counted there)
                extra.finish(embeddings[len(kept):], label_set)
            t3 = time.perf_counter()
        except Exception as exc:
            reason = f"publishing failed: {type(exc).__name__}: {exc}"
            self.stats.frames_failed(cameras, reason)
            self._on_error(reason)
            return []
        now = time.monotonic()
        self.stats.stage("encode", t1 - t0)
        self.stats.stage("score", t2 - t1)
        self.stats.stage("publish", t3 - t2)
        for f in kept:
            self.stats.stage("age", now - f.received)
        if kept:
            self.stats.frames_processed(cameras)
        return results

    def _score(self, frames: Sequence[PendingFrame], embeddings: np.ndarray,
               label_set: LabelSet, crops: Sequence[np.ndarray] = ()) -> list[FrameResult]:
        if embeddings.shape[0] != len(frames):
            raise ValueError(f"encoder returned {embeddings.shape[0]} embeddings for "
                             f"{len(frames)} frames")
        classifications = label_set.classify(embeddings)
        cosines = label_set.landmark_cosines(embeddings)
        alpha = label_set.spec.landmark_smoothing
        results = []
        crops = list(crops) or [None] * len(frames)
        for frame, cls, cos, emb, crop in zip(frames, classifications, cosines, embeddings, crops):
            cos = self.smoother.apply(frame.camera, label_set.landmark_key, cos, alpha)
            landmarks = tuple(LabelScore(n, float(c)) for n, c in zip(label_set.landmarks, cos))
            results.append(FrameResult(frame, cls, landmarks, label_set.version, emb, crop))
        return results
