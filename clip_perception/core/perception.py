"""The node's pipeline without ROS: label sets, newest-frame slots, batching, rate cap, stats.

Everything here is plain Python + numpy so it is unit-testable without rclpy. The ROS node
(``clip_perception.ros.node``) only converts messages and calls into this module.

Threads and what they share:
  * subscription callbacks call ``LatestFrameSlots.put`` (O(1), never blocks on inference);
  * one ``PerceptionWorker`` thread takes the newest frame of every waiting camera (up to
    ``max_batch``), decodes, preprocesses, encodes them in ONE encoder call, scores and publishes;
  * its "preparer" thread decodes + preprocesses the waiting frames just before the running
    encode is predicted to end (``JustInTimePlanner``), so the next encode need not wait for
    that work. Which frames are encoded does not change: the worker still takes the newest
    frame per camera when it is free and only reuses a preparation made for exactly that
    frame (``PreparedFrames``); a frame replaced by a newer one meanwhile is never encoded;
  * one ``LabelSetManager`` thread re-encodes prompts after a live label change and then swaps
    the immutable ``LabelSet`` by reference. The worker reads that reference once per batch, so
    no published message mixes two label sets and a label change never stalls frames.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .adapter import AdapterError, AdapterHead, load_adapter
from .scoring import Classification, LabelScore, ZeroShotClassifier, softmax, top_k_classifications
from .text import PromptEmbeddingCache, parse_label_prompts, prompts_for, validate_templates

logger = logging.getLogger(__name__)

DEFAULT_LANDMARK_TEMPLATES = ("a photo of {}.",)
ADAPTER_BLEND_FROM_FILE = -1.0  # adapter_blend sentinel: use the blend stored with the adapter


class SpecError(ValueError):
    """An invalid label-set setting; ``parameter`` names the setting, the message says why."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.reason = message


# --------------------------------------------------------------------------------------------
# Label sets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelSetSpec:
    """Everything that decides what a frame's outputs mean. Validated on construction."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    label_prompts: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, prompts) overrides
    top_k: int = 5
    score_threshold: float = 0.0
    landmarks: tuple[str, ...] = ()
    landmark_templates: tuple[str, ...] = DEFAULT_LANDMARK_TEMPLATES
    landmark_smoothing: float = 0.0
    adapter_path: str = ""
    adapter_blend: float = ADAPTER_BLEND_FROM_FILE

    def __post_init__(self):
        _validate_spec(self)

    @classmethod
    def from_values(cls, *, labels: Sequence[str], prompt_templates: Sequence[str],
                    label_prompts: Sequence[str] = (), top_k: int = 5,
                    score_threshold: float = 0.0, landmarks: Sequence[str] = (),
                    landmark_templates: Sequence[str] = DEFAULT_LANDMARK_TEMPLATES,
                    landmark_smoothing: float = 0.0, adapter_path: str = "",
                    adapter_blend: float = ADAPTER_BLEND_FROM_FILE) -> "LabelSetSpec":
        """Build from parameter-shaped values (``label_prompts`` as ``label=prompt|...`` strings)."""
        try:
            overrides = parse_label_prompts(label_prompts)
        except ValueError as exc:
            raise SpecError("label_prompts", str(exc)) from None
        return cls(labels=tuple(labels), templates=tuple(prompt_templates),
                   label_prompts=tuple(overrides.items()), top_k=int(top_k),
                   score_threshold=float(score_threshold), landmarks=tuple(landmarks),
                   landmark_templates=tuple(landmark_templates),
                   landmark_smoothing=float(landmark_smoothing), adapter_path=adapter_path,
                   adapter_blend=float(adapter_blend))

    @property
    def overrides(self) -> dict[str, tuple[str, ...]]:
        return dict(self.label_prompts)


def _validate_spec(spec: LabelSetSpec) -> None:
    def names(param: str, values: Sequence[str], allow_empty: bool) -> None:
        if not values and not allow_empty:
            raise SpecError(param, "is empty; expected at least one entry, e.g. ['cup', 'chair']")
        blank = [i for i, v in enumerate(values) if not v.strip()]
        if blank:
            raise SpecError(param, f"entries {blank} are blank; got {list(values)}")
        dupes = sorted({v for v in values if list(values).count(v) > 1})
        if dupes:
            raise SpecError(param, f"duplicate entries {dupes}; each must appear once")

    names("labels", spec.labels, allow_empty=False)
    names("landmarks", spec.landmarks, allow_empty=True)
    for param, templates in (("prompt_templates", spec.templates),
                             ("landmark_templates", spec.landmark_templates)):
        try:
            validate_templates(templates)
        except ValueError as exc:
            raise SpecError(param, str(exc)) from None
    unknown = [label for label, _ in spec.label_prompts if label not in spec.labels]
    if unknown:
        raise SpecError("label_prompts", f"override(s) for {unknown} name no label in "
                                         f"labels {list(spec.labels)}")
    if spec.top_k < 1:
        raise SpecError("top_k", f"must be >= 1, got {spec.top_k}")
    if not 0.0 <= spec.score_threshold <= 1.0 or math.isnan(spec.score_threshold):
        raise SpecError("score_threshold", f"must be in [0, 1], got {spec.score_threshold}")
    if not 0.0 <= spec.landmark_smoothing < 1.0:
        raise SpecError("landmark_smoothing", "must be in [0, 1) (weight of the previous "
                                              f"smoothed value), got {spec.landmark_smoothing}")
    blend = spec.adapter_blend
    if blend != ADAPTER_BLEND_FROM_FILE and not 0.0 <= blend <= 1.0:
        raise SpecError("adapter_blend", f"must be in [0, 1], or {ADAPTER_BLEND_FROM_FILE} for "
                                         f"the blend stored with the adapter; got {blend}")


def load_checked_adapter(path: str, labels: Sequence[str], weights_hash: Callable[[], str],
                         embed_dim: int, model_identifier: str) -> AdapterHead:
    """Load the adapter at ``path`` and check it fits the model and ``labels``; rows reordered.

    ``weights_hash`` is a callable because hashing every weight costs ~0.5 s for ViT-B-32 and
    is only needed when an adapter is used. Raises SpecError('adapter_path', reason).
    """
    try:
        head = load_adapter(path)
        head.check_compatible(weights_hash(), embed_dim, model_identifier)
        return head.reordered(labels)
    except AdapterError as exc:
        raise SpecError("adapter_path", str(exc)) from None


@dataclass(frozen=True, eq=False)
class LabelSet:
    """An immutable snapshot of labels, landmarks and their embeddings. Swapped by reference."""

    spec: LabelSetSpec
    version: int
    classifier: ZeroShotClassifier
    landmark_embeddings: np.ndarray  # (M, D), L2-normalised, in spec.landmarks order
    adapter: Optional[AdapterHead] = None  # classifier rows in spec.labels order
    adapter_blend: float = 0.0  # resolved: never the "from file" sentinel

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def landmarks(self) -> tuple[str, ...]:
        return self.spec.landmarks

    @property
    def landmark_key(self) -> tuple:
        """Identity of the landmark embeddings: smoothing state is reset when it changes."""
        return (self.spec.landmarks, self.spec.landmark_templates)

    def probabilities(self, image_emb: np.ndarray) -> np.ndarray:
        logits = self.classifier.logits(image_emb)
        if self.adapter is not None and self.adapter_blend > 0.0:
            logits = self.adapter.blended_logits(image_emb, logits, self.adapter_blend)
        return softmax(logits)

    def classify(self, image_emb: np.ndarray) -> list[Classification]:
        return top_k_classifications(self.probabilities(image_emb), self.labels,
                                     self.spec.top_k, self.spec.score_threshold)

    def landmark_cosines(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, M) raw cosine similarities (LM-Nav uses the raw cosine, not a softmax)."""
        return np.asarray(image_emb, np.float32) @ self.landmark_embeddings.T


def build_label_set(spec: LabelSetSpec, cache: PromptEmbeddingCache, logit_scale: float,
                    embed_dim: int, version: int,
                    adapter: Optional[AdapterHead] = None) -> LabelSet:
    """Encode (only uncached) prompts and assemble the snapshot. ``adapter`` must be checked."""
    if spec.adapter_path and adapter is None:
        raise SpecError("adapter_path", f"{spec.adapter_path} is set but no checked adapter "
                                        "was given")
    class_emb = cache.ensemble(spec.labels, spec.templates, spec.overrides)
    if spec.landmarks:
        landmark_emb = cache.ensemble(spec.landmarks, spec.landmark_templates)
    else:
        landmark_emb = np.zeros((0, embed_dim), np.float32)
    blend = 0.0
    if adapter is not None:
        blend = adapter.default_blend if spec.adapter_blend == ADAPTER_BLEND_FROM_FILE \
            else spec.adapter_blend
        differs = adapter_prompt_differences(adapter, spec)
        if differs and blend < 1.0:
            logger.warning("adapter %s was trained with other prompts (%s); its blend %.2f "
                           "mixes it with zero-shot scores from the current prompts, which "
                           "the head never saw", spec.adapter_path, differs, blend)
    return LabelSet(spec=spec, version=version,
                    classifier=ZeroShotClassifier(spec.labels, class_emb, logit_scale),
                    landmark_embeddings=landmark_emb, adapter=adapter, adapter_blend=blend)


def adapter_prompt_differences(adapter: AdapterHead, spec: LabelSetSpec) -> str:
    """What differs between the prompts an adapter was trained with and ``spec``'s ("" if none).

    Only the prompts of the labels in use count; metadata without prompts is not compared.
    """
    meta = adapter.metadata
    if "templates" not in meta:
        return ""
    trained = {label: prompts_for(label, meta["templates"], meta.get("label_prompts") or {})
               for label in spec.labels}
    current = {label: prompts_for(label, spec.templates, spec.overrides) for label in spec.labels}
    changed = [label for label in spec.labels if trained[label] != current[label]]
    return f"prompts of {changed}" if changed else ""


class LabelSetManager:
    """Holds the current LabelSet; builds requested ones in a background thread.

    ``request`` returns at once. The newest request is built next (older, not yet started
    requests are skipped: each request is a complete spec). Frames keep being scored with
    ``current`` until the new set is ready; then the reference is replaced in one assignment.
    """

    def __init__(self, build: Callable[[LabelSetSpec, Optional[AdapterHead], int], LabelSet],
                 initial: LabelSet):
        self._build = build
        self.current: LabelSet = initial
        self._cond = threading.Condition()
        self._pending: Optional[tuple[LabelSetSpec, Optional[AdapterHead], int]] = None
        self._next_version = initial.version + 1
        self._building_version: Optional[int] = None
        self.last_error: str = ""
        self.failed_version: Optional[int] = None
        self.builds = 0
        self.last_build_seconds = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="label_set_builder", daemon=True)
        self._thread.start()

    def request(self, spec: LabelSetSpec, adapter: Optional[AdapterHead] = None) -> int:
        """Schedule ``spec``; returns the version the resulting LabelSet will carry."""
        with self._cond:
            version = self._next_version
            self._next_version += 1
            self._pending = (spec, adapter, version)
            self._cond.notify_all()
            return version

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._building_version is not None

    def wait_for(self, version: int, timeout: float) -> bool:
        """True once ``current.version >= version`` (or that version failed); for tests/tools."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.current.version < version and not (
                    self.failed_version is not None and self.failed_version >= version):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self.current.version >= version

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                spec, adapter, version = self._pending
                self._pending = None
                self._building_version = version
            start = time.perf_counter()
            try:
                label_set = self._build(spec, adapter, version)
            except Exception as exc:  # keep serving the old set; diagnostics shows the error
                logger.exception("building label set v%d failed", version)
                with self._cond:
                    self.last_error = f"label set v{version} failed to build: {exc}"
                    self.failed_version = version
                    self._building_version = None
                    self._cond.notify_all()
                continue
            with self._cond:
                self.current = label_set  # the one atomic swap
                self.builds += 1
                self.last_build_seconds = time.perf_counter() - start
                self._building_version = None
                self._cond.notify_all()


# --------------------------------------------------------------------------------------------
# Frames: newest-frame slots, rate cap
# --------------------------------------------------------------------------------------------
@dataclass
class PendingFrame:
    camera: str
    payload: Any  # the message as received; decoded in the worker, only if it gets processed
    received: float  # time.monotonic() at arrival


class LatestFrameSlots:
    """One slot per camera holding only its newest frame; a newer frame replaces (drops) it.

    ``put`` is what subscription callbacks call: constant time, never waits for inference.
    ``take`` hands the worker up to ``max_batch`` waiting frames, the longest-waiting cameras
    first, so with more cameras than ``max_batch`` every camera still gets its turn.
    """

    def __init__(self, cameras: Sequence[str], stats: "PipelineStats"):
        self._slots: "OrderedDict[str, Optional[PendingFrame]]" = OrderedDict(
            (c, None) for c in cameras)
        self._stats = stats
        self._cond = threading.Condition()
        self._closed = False
        self._changes = 0  # bumped by put/take/close/poke; the preparer waits on it

    def put(self, camera: str, payload: Any, received: Optional[float] = None) -> bool:
        """Store ``payload`` as ``camera``'s newest frame; True if an unprocessed one was dropped."""
        frame = PendingFrame(camera, payload, time.monotonic() if received is None else received)
        with self._cond:
            if camera not in self._slots:
                raise KeyError(f"unknown camera {camera!r}; known: {list(self._slots)}")
            dropped = self._slots[camera] is not None
            self._slots[camera] = frame
            self._changes += 1
            self._cond.notify_all()  # the worker and the preparer both wait on this
        self._stats.frame_received(camera, dropped)
        return dropped

    def take(self, max_batch: int, timeout: Optional[float] = None) -> list[PendingFrame]:
        """Up to ``max_batch`` frames (oldest arrival first); [] on timeout or after close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or any(self._slots.values()),
                                       timeout):
                return []
            if self._closed:
                return []
            waiting = self._waiting(max_batch)
            for f in waiting:
                self._slots[f.camera] = None
            self._changes += 1
            self._cond.notify_all()
            return waiting

    def peek(self, max_batch: int) -> list[PendingFrame]:
        """The frames ``take`` would return now, left in place."""
        with self._cond:
            return self._waiting(max_batch)

    def _waiting(self, max_batch: int) -> list[PendingFrame]:
        return sorted((f for f in self._slots.values() if f is not None),
                      key=lambda f: f.received)[:max_batch]

    @property
    def changes(self) -> int:
        with self._cond:
            return self._changes

    def wait_for_change(self, seen: int, timeout: Optional[float]) -> int:
        """Wait until the change counter differs from ``seen`` (or timeout); returns it."""
        with self._cond:
            self._cond.wait_for(lambda: self._changes != seen or self._closed, timeout)
            return self._changes

    def poke(self) -> None:
        """Wake ``wait_for_change`` callers (the worker's state changed)."""
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._changes += 1
            self._cond.notify_all()


class RateLimiter:
    """Spaces batch starts at least 1/max_rate_hz apart; ``max_rate_hz`` may change at any time."""

    def __init__(self, max_rate_hz: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.max_rate_hz = max_rate_hz
        self._clock = clock
        self._last_start: Optional[float] = None

    def delay(self) -> float:
        """Seconds to wait before the next batch may start (0 if unlimited or due)."""
        rate = self.max_rate_hz
        if rate <= 0 or self._last_start is None:
            return 0.0
        return max(0.0, self._last_start + 1.0 / rate - self._clock())

    def started(self) -> None:
        self._last_start = self._clock()

    def next_start(self) -> Optional[float]:
        """Earliest clock time the next batch may start; None if unlimited."""
        rate = self.max_rate_hz
        if rate <= 0 or self._last_start is None:
            return None
        return self._last_start + 1.0 / rate


class JustInTimePlanner:
    """When to start preparing the next batch so that it is ready just as the encoder frees up.

    ``prepare_at(n) = expected_free - n * prepare_ema - margin``: ``expected_free`` is the start
    of the running batch plus the EMA of how long batches of that size kept the encoder busy
    (encode + score + publish), or the next rate-limit turn if that is later. Preparing earlier
    than needed only lets a newer frame arrive meanwhile and supersede the prepared one (wasted
    CPU on a machine the encoder already saturates); later makes the encoder wait. The margin
    (``margin + margin_fraction`` of the predicted preparation time) absorbs jitter. None means
    no prediction (encoder idle, or nothing measured yet): the encoder thread then prepares the
    frames itself when it takes them, as without a planner. Thread-safe; ``clock`` is
    time.monotonic unless a test passes its own.
    """

    def __init__(self, alpha: float = 0.3, margin: float = 0.002, margin_fraction: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.margin, self.margin_fraction = alpha, margin, margin_fraction
        self._clock = clock
        self._lock = threading.Lock()
        self._busy: dict[int, float] = {}  # batch size -> EMA of busy seconds
        self._prepare: Optional[float] = None  # EMA of decode + preprocess seconds per frame
        self._running: Optional[tuple[float, int]] = None  # (start, batch size)
        self._not_before: Optional[float] = None  # next rate-limit turn

    def now(self) -> float:
        return self._clock()

    def _ema(self, old: Optional[float], new: float) -> float:
        return new if old is None else old + self.alpha * (new - old)

    def frame_prepared(self, seconds: float) -> None:
        with self._lock:
            self._prepare = self._ema(self._prepare, seconds)

    def batch_started(self, size: int, not_before: Optional[float] = None) -> None:
        with self._lock:
            self._running = (self._clock(), size)
            self._not_before = not_before

    def batch_finished(self) -> None:
        with self._lock:
            if self._running is not None:
                start, size = self._running
                self._busy[size] = self._ema(self._busy.get(size), self._clock() - start)
            self._running = None

    def _busy_estimate(self, size: int) -> Optional[float]:
        if size in self._busy:
            return self._busy[size]
        if not self._busy:
            return None
        nearest = min(self._busy, key=lambda k: abs(k - size))  # CPU encoders scale ~linearly
        return self._busy[nearest] * size / nearest

    def expected_free(self) -> Optional[float]:
        """When the encoder is predicted to want its next batch; None if unknown/idle."""
        with self._lock:
            turn = self._not_before
            if self._running is None:
                # Idle but waiting for its rate turn: that turn is when it wants frames.
                return turn if turn is not None and turn > self._clock() else None
            start, size = self._running
            busy = self._busy_estimate(size)
            if busy is None:
                return None
            return max(start + busy, turn) if turn is not None else start + busy

    def prepare_at(self, frames: int) -> Optional[float]:
        """When to start preparing ``frames`` frames; None: do not prepare ahead now."""
        free = self.expected_free()
        with self._lock:
            prepare = self._prepare
        if free is None or prepare is None:
            return None
        lead = frames * prepare
        return free - lead - self.margin - self.margin_fraction * lead


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


class LandmarkSmoother:
    """Per-camera exponential moving average of landmark cosines.

    ``smoothed = alpha * previous + (1 - alpha) * new``; alpha = 0 passes values through. The
    state restarts when the landmark set changes (different rows would otherwise be averaged).
    """

    def __init__(self):
        self._state: dict[str, tuple[tuple, np.ndarray]] = {}

    def apply(self, camera: str, key: tuple, values: np.ndarray, alpha: float) -> np.ndarray:
        previous = self._state.get(camera)
        if alpha > 0.0 and previous is not None and previous[0] == key:
            values = alpha * previous[1] + (1.0 - alpha) * values
        self._state[camera] = (key, values)
        return values


class WarningThrottle:
    """At most one warning per ``key`` every ``period`` seconds; counts what was suppressed."""

    def __init__(self, period: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.period = period
        self._clock = clock
        self._last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def allow(self, key: Any) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def take_suppressed(self, key: Any) -> int:
        return self.suppressed.pop(key, 0)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
STAGES = ("decode", "preprocess", "encode", "score", "publish", "age")
# what each stage's samples measure (for diagnostics keys)
STAGE_UNITS = {"decode": "per frame", "preprocess": "per frame", "encode": "per batch",
               "score": "per batch", "publish": "per batch",
               "age": "frame arrival to publish"}


@dataclass
class CameraCounters:
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before the worker got to it
    rejected: int = 0  # could not be decoded/preprocessed (bad frame)
    failed: int = 0  # lost to an encoder/scoring/publish error
    last_error: str = ""
    last_error_time: float = 0.0  # time.monotonic()
    last_received: float = 0.0


@dataclass
class StageWindow:
    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.maximum = max(self.maximum, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class StatsSnapshot:
    cameras: dict[str, CameraCounters]
    stages: dict[str, StageWindow]  # since the previous snapshot
    batches: int  # since the previous snapshot
    batch_frames: int  # since the previous snapshot
    window_seconds: float
    errors: int  # pipeline errors (encode/score/publish), total
    last_error: str
    last_error_time: float
    prepared_ahead: int = 0  # since the previous snapshot: frames encoded from a preparation
    preparations_wasted: int = 0  # made ahead, then superseded by a newer frame (since previous)


class PipelineStats:
    """Thread-safe counters (totals) and per-stage latency windows (reset at each snapshot)."""

    def __init__(self, cameras: Sequence[str], clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._cameras = {c: CameraCounters() for c in cameras}
        self._stages = {s: StageWindow() for s in STAGES}
        self._batches = 0
        self._batch_frames = 0
        self._window_start = clock()
        self._errors = 0
        self._last_error = ""
        self._last_error_time = 0.0
        self._prepared_ahead = 0
        self._preparations_wasted = 0

    def frame_received(self, camera: str, dropped: bool) -> None:
        with self._lock:
            c = self._cameras[camera]
            c.received += 1
            c.dropped += int(dropped)
            c.last_received = self._clock()

    def frame_rejected(self, camera: str, reason: str) -> None:
        with self._lock:
            c = self._cameras[camera]
            c.rejected += 1
            c.last_error, c.last_error_time = reason, self._clock()

    def frames_failed(self, cameras: Sequence[str], reason: str) -> None:
        with self._lock:
            for camera in cameras:
                self._cameras[camera].failed += 1
            self._errors += 1
            self._last_error, self._last_error_time = reason, self._clock()

    def frames_processed(self, cameras: Sequence[str]) -> None:
        with self._lock:
            for camera in cameras:
                self._cameras[camera].processed += 1
            self._batches += 1
            self._batch_frames += len(cameras)

    def frames_prepared_ahead(self, count: int) -> None:
        with self._lock:
            self._prepared_ahead += count

    def preparation_wasted(self, camera: str) -> None:
        with self._lock:
            self._preparations_wasted += 1

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._stages[name].add(seconds)

    def snapshot(self, reset_window: bool = True) -> StatsSnapshot:
        with self._lock:
            now = self._clock()
            snap = StatsSnapshot(
                cameras={k: CameraCounters(**vars(v)) for k, v in self._cameras.items()},
                stages={k: StageWindow(**vars(v)) for k, v in self._stages.items()},
                batches=self._batches, batch_frames=self._batch_frames,
                window_seconds=now - self._window_start, errors=self._errors,
                last_error=self._last_error, last_error_time=self._last_error_time,
                prepared_ahead=self._prepared_ahead,
                preparations_wasted=self._preparations_wasted)
            if reset_window:
                self._stages = {s: StageWindow() for s in STAGES}
                self._batches = self._batch_frames = 0
                self._prepared_ahead = self._preparations_wasted = 0
                self._window_start = now
            return snap


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameResult:
    frame: PendingFrame
    classification: Classification
    landmarks: tuple[LabelScore, ...]  # in label_set.landmarks order
    label_set_version: int


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
    cores); an encoder that keeps every core busy just loses time to it (NODE_RESULTS.md).
    ``prepare_ahead`` may be a callable, asked again before every preparation, for encoders
    that move between CPU and GPU (a TensorRT engine swapped in).
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
                 planner: Optional[JustInTimePlanner] = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.slots, self.stats = slots, stats
        self._label_sets = label_sets
        self._decode, self._preprocess, self._normalize = decode, preprocess, normalize
        self._encode, self._publish = encode, publish
        self.max_batch = max_batch
        self.rate = RateLimiter(max_rate_hz)
        self.smoother = LandmarkSmoother()
        self._on_bad_frame, self._on_error = on_bad_frame, on_error
        self._prepare_ahead = prepare_ahead if callable(prepare_ahead) else \
            (lambda: bool(prepare_ahead))
        self._preparer_wanted = callable(prepare_ahead) or bool(prepare_ahead)
        self.planner = planner or JustInTimePlanner()
        self.prepared = PreparedFrames(stats.preparation_wasted)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._preparer: Optional[threading.Thread] = None

    @property
    def max_rate_hz(self) -> float:
        return self.rate.max_rate_hz

    @max_rate_hz.setter
    def max_rate_hz(self, value: float) -> None:
        self.rate.max_rate_hz = float(value)

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
            frames = self.slots.take(self.max_batch, timeout=0.2)
            if frames:
                self.rate.started()
                self.process(frames)
                self._start_preparer_if_wanted()

    def _run_preparer(self) -> None:
        """Prepare waiting frames once the planner says the next batch is due soon."""
        while not self._stop.is_set():
            seen = self.slots.changes  # read before looking, so no change is missed
            todo = [f for f in self.slots.peek(self.max_batch) if not self.prepared.has(f)]
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
        if not kept:
            return []
        self.stats.frames_prepared_ahead(ahead)
        self.planner.batch_started(len(kept), self.rate.next_start())
        self.slots.poke()  # the preparer re-plans for this batch
        try:
            return self._encode_score_publish(kept, crops, label_set)
        finally:
            self.planner.batch_finished()

    def _encode_score_publish(self, kept: list[PendingFrame], crops: list[np.ndarray],
                              label_set: LabelSet) -> list[FrameResult]:
        cameras = [f.camera for f in kept]
        try:
            t0 = time.perf_counter()
            batch = self._normalize(np.stack(crops))
            embeddings = self._encode(batch)
            t1 = time.perf_counter()
            results = self._score(kept, embeddings, label_set)
            t2 = time.perf_counter()
        except Exception as exc:
            reason = f"inference failed for {len(kept)} frame(s): {type(exc).__name__}: {exc}"
            logger.debug("pipeline error", exc_info=True)
            self.stats.frames_failed(cameras, reason)
            self._on_error(reason)
            return []
        try:
            self._publish(results)
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
        self.stats.frames_processed(cameras)
        return results

    def _score(self, frames: Sequence[PendingFrame], embeddings: np.ndarray,
               label_set: LabelSet) -> list[FrameResult]:
        if embeddings.shape[0] != len(frames):
            raise ValueError(f"encoder returned {embeddings.shape[0]} embeddings for "
                             f"{len(frames)} frames")
        classifications = label_set.classify(embeddings)
        cosines = label_set.landmark_cosines(embeddings)
        alpha = label_set.spec.landmark_smoothing
        results = []
        for frame, cls, cos in zip(frames, classifications, cosines):
            cos = self.smoother.apply(frame.camera, label_set.landmark_key, cos, alpha)
            landmarks = tuple(LabelScore(n, float(c)) for n, c in zip(label_set.landmarks, cos))
            results.append(FrameResult(frame, cls, landmarks, label_set.version))
        return results


def count_prompts(spec: LabelSetSpec) -> int:
    """How many prompt strings a spec encodes (for logs and diagnostics)."""
    overrides = spec.overrides
    return (sum(len(prompts_for(label, spec.templates, overrides)) for label in spec.labels)
            + len(spec.landmarks) * len(spec.landmark_templates))


__all__ = ["ADAPTER_BLEND_FROM_FILE", "DEFAULT_LANDMARK_TEMPLATES", "CameraCounters",
           "FrameResult", "JustInTimePlanner", "LabelSet", "LabelSetManager", "LabelSetSpec",
           "LandmarkSmoother", "LatestFrameSlots", "PendingFrame", "PerceptionWorker",
           "PipelineStats", "PreparedFrame", "PreparedFrames",
           "RateLimiter", "SpecError", "StageWindow", "StatsSnapshot", "STAGES", "STAGE_UNITS",
           "WarningThrottle", "build_label_set", "count_prompts", "load_checked_adapter"]
