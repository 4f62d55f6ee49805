"""core.pipeline without ROS: slots, rate cap, smoothing, the worker, preparing ahead."""
import threading
import time

import numpy as np
import pytest

from clip_perception.core.pipeline import (JustInTimePlanner, LandmarkSmoother, LatestFrameSlots,
                                           PendingFrame, PerceptionWorker, PipelineStats,
                                           PreparedFrame, PreparedFrames, RateLimiter)
from clip_perception.core.prompts import PromptEmbeddingCache
from label_sets import fake_text_encoder, label_set, spec


# ---- slots, rate, smoothing ------------------------------------------------------------------
def test_slots_keep_only_newest_frame_per_camera_and_count_drops():
    stats = PipelineStats(["a", "b"])
    slots = LatestFrameSlots(["a", "b"], stats)
    assert slots.put("a", 1, received=1.0) is False
    assert slots.put("a", 2, received=2.0) is True
    slots.put("b", 3, received=1.5)
    batch = slots.take(max_batch=8, timeout=0)
    assert [(f.camera, f.payload) for f in batch] == [("b", 3), ("a", 2)]  # oldest first
    assert slots.take(max_batch=8, timeout=0) == []
    snap = stats.snapshot()
    assert (snap.cameras["a"].received, snap.cameras["a"].dropped) == (2, 1)
    with pytest.raises(KeyError, match="unknown camera 'c'"):
        slots.put("c", 0)


def test_slots_batch_limit_serves_longest_waiting_first():
    slots = LatestFrameSlots(["a", "b", "c"], PipelineStats(["a", "b", "c"]))
    for t, cam in enumerate(["c", "a", "b"]):
        slots.put(cam, t, received=float(t))
    assert [f.camera for f in slots.take(2, timeout=0)] == ["c", "a"]
    assert [f.camera for f in slots.take(2, timeout=0)] == ["b"]


def test_slots_rotate_over_synchronised_cameras_one_frame_at_a_time():
    """Three cameras publish at the same tick, always in the order a, b, c, and each new frame
    replaces the waiting one: taking one frame per call must still serve every camera in turn
    (by arrival alone, a's newest frame would be the oldest waiting every time)."""
    cams = ["a", "b", "c"]
    slots = LatestFrameSlots(cams, PipelineStats(cams))
    served = []
    for tick in range(9):
        for i, cam in enumerate(cams):
            slots.put(cam, tick, received=tick + i * 1e-3)
        served += [f.camera for f in slots.take(1, timeout=0)]
    assert served == cams * 3


def test_slots_take_wakes_on_put_and_on_close():
    slots = LatestFrameSlots(["a"], PipelineStats(["a"]))
    threading.Timer(0.05, slots.put, args=("a", "x")).start()
    start = time.monotonic()
    assert [f.payload for f in slots.take(1, timeout=5)] == ["x"]
    assert time.monotonic() - start < 2
    threading.Timer(0.05, slots.close).start()
    assert slots.take(1, timeout=5) == []


def test_rate_limiter():
    now = [100.0]
    rate = RateLimiter(0.0, clock=lambda: now[0])
    rate.started()
    assert rate.delay() == 0.0  # unlimited
    rate.max_rate_hz = 4.0
    assert rate.delay() == pytest.approx(0.25)
    now[0] += 0.2
    assert rate.delay() == pytest.approx(0.05)
    now[0] += 0.1
    assert rate.delay() == 0.0


def test_landmark_smoother_ema_per_camera_and_reset_on_new_landmarks():
    sm = LandmarkSmoother()
    k = (("door",), ("{}",))
    np.testing.assert_allclose(sm.apply("a", k, np.array([1.0]), 0.5), [1.0])
    np.testing.assert_allclose(sm.apply("a", k, np.array([0.0]), 0.5), [0.5])
    np.testing.assert_allclose(sm.apply("b", k, np.array([0.2]), 0.5), [0.2])  # own state
    np.testing.assert_allclose(sm.apply("a", (("tree",), ("{}",)), np.array([0.0]), 0.5), [0.0])
    np.testing.assert_allclose(sm.apply("a", (("tree",), ("{}",)), np.array([0.4]), 0.0), [0.4])


# ---- the worker ------------------------------------------------------------------------------
def _worker(published, cameras=("a", "b"), encode=None, max_batch=8, ls=None):
    stats = PipelineStats(list(cameras))
    slots = LatestFrameSlots(list(cameras), stats)
    ls = ls or label_set(spec(landmarks=["a red door", "a tree"]))
    batches = []

    def default_encode(batch):
        batches.append(batch.shape[0])
        emb = np.tile(ls.classifier.class_embeddings[1], (batch.shape[0], 1))
        return emb

    def decode(camera, payload):
        if payload == "bad":
            raise ValueError("unsupported encoding 'yuv422'")
        return np.full((4, 4, 3), payload, np.uint8)

    worker = PerceptionWorker(
        slots, stats, lambda: ls, decode, lambda rgb: rgb.astype(np.float32),
        lambda crops: crops, encode or default_encode, published.extend, max_batch=max_batch)
    return worker, slots, stats, batches


def test_worker_batches_cameras_in_one_encoder_call_and_rejects_bad_frames():
    published, bad = [], []
    worker, slots, stats, batches = _worker(published, cameras=("a", "b", "c"))
    worker._on_bad_frame = lambda camera, reason: bad.append((camera, reason))
    slots.put("a", 1)
    slots.put("b", "bad")
    slots.put("c", 3)
    results = worker.process(slots.take(8, timeout=0))
    assert batches == [2]  # a and c together, b rejected before encoding
    assert [r.frame.camera for r in results] == ["a", "c"] and published == results
    assert results[0].classification.best.label == "apple"
    assert [s.label for s in results[0].landmarks] == ["a red door", "a tree"]
    assert bad == [("b", "unsupported encoding 'yuv422'")]
    snap = stats.snapshot()
    assert snap.cameras["b"].rejected == 1 and "yuv422" in snap.cameras["b"].last_error
    assert snap.cameras["a"].processed == 1 and snap.batches == 1
    assert snap.stages["encode"].count == 1 and snap.stages["decode"].count == 2


def test_worker_takes_one_frame_per_call_for_an_engine_that_does_not_batch():
    published = []
    worker, slots, stats, batches = _worker(published, cameras=("a", "b", "c"))
    singly = [True]
    worker._batch_limit = lambda: 1 if singly[0] else None
    for cam in ("a", "b", "c"):
        slots.put(cam, 1)
    while True:
        frames = slots.take(worker.batch_size, timeout=0)
        if not frames:
            break
        worker.process(frames)
    assert batches == [1, 1, 1] and [r.frame.camera for r in published] == ["a", "b", "c"]
    singly[0] = False  # e.g. a batching engine swapped in: asked again before every take
    assert worker.batch_size == 8


def test_worker_survives_encoder_errors_and_counts_them():
    published, errors = [], []

    def broken(batch):
        raise RuntimeError("CUDA out of memory")

    worker, slots, stats, _ = _worker(published, encode=broken)
    worker._on_error = errors.append
    slots.put("a", 1)
    assert worker.process(slots.take(8, timeout=0)) == []
    snap = stats.snapshot()
    assert snap.errors == 1 and snap.cameras["a"].failed == 1
    assert "CUDA out of memory" in errors[0]


def test_worker_thread_respects_max_batch_and_rate_and_stops():
    published = []
    worker, slots, stats, batches = _worker(published, cameras=("a", "b", "c"), max_batch=2)
    worker.max_rate_hz = 20.0
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(batches) < 6:
            for cam in ("a", "b", "c"):
                slots.put(cam, 7)
            time.sleep(0.01)
        assert len(batches) >= 6 and max(batches) <= 2
        snap = stats.snapshot()
        rate = snap.batches / snap.window_seconds
        assert rate < 20.0 * 1.3, f"{rate:.1f} batches/s with max_rate_hz=20"
    finally:
        worker.stop()
    assert not worker._thread.is_alive() and not worker._preparer.is_alive()


def test_worker_uses_one_label_set_per_batch():
    """A swap between two batches shows up only in the next batch, never inside one."""
    cache = PromptEmbeddingCache(fake_text_encoder()[0])
    sets = [label_set(spec(), 1, cache), label_set(spec(labels=["pear", "fig"]), 2, cache)]
    reads = []

    def current():
        reads.append(1)
        return sets[len(reads) - 1] if len(reads) <= 2 else sets[-1]

    published = []
    worker, slots, stats, _ = _worker(published, cameras=("a", "b"))
    worker._label_sets = current
    for expected in ((1, {"cup", "apple"}), (2, {"pear", "fig"})):
        slots.put("a", 1)
        slots.put("b", 2)
        results = worker.process(slots.take(8, timeout=0))
        assert {r.label_set_version for r in results} == {expected[0]}
        for r in results:
            assert {h.label for h in r.classification.hypotheses} <= expected[1] | {"unknown"}



# ---- preparing ahead, just in time -------------------------------------------------------------
class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def _primed_planner(clock, busy=0.1, prepare=0.01, **kw):
    """A planner that has seen one 1-frame batch take ``busy`` s and one frame take ``prepare``."""
    planner = JustInTimePlanner(clock=clock, **kw)
    planner.frame_prepared(prepare)
    planner.batch_started(1)
    clock.t += busy
    planner.batch_finished()
    return planner


def test_planner_measures_preparation_as_a_share_of_the_encoders_time_per_frame():
    clock = FakeClock()
    planner = JustInTimePlanner(clock=clock, alpha=1.0)
    planner.frame_prepared(0.002)
    for done in range(10):
        assert planner.preparation_share() is None  # warm-up batches decide nothing
        planner.batch_started(4)
        clock.t += 0.08  # 20 ms per frame
        planner.batch_finished()
    assert planner.preparation_share() == pytest.approx(0.1)
    planner.batch_started(1)
    clock.t += 0.04  # the last size counts: frames one at a time take 40 ms each
    planner.batch_finished()
    assert planner.preparation_share() == pytest.approx(0.05)


def test_planner_takes_batches_of_detection_crops_only_without_dividing_by_zero():
    # A batch may hold no frame, only a detector's crops (the worker's companion): size 0.
    clock = FakeClock()
    planner = _primed_planner(clock, busy=0.04, prepare=0.002, alpha=1.0)
    for _ in range(12):
        planner.batch_started(0)
        clock.t += 0.03
        planner.batch_finished()
    assert planner.preparation_share(min_batches=1) == pytest.approx(0.002 / 0.04)
    assert planner.preparation_share() is None  # only one batch had frames
    planner.batch_started(0)
    assert planner.expected_free() == pytest.approx(clock.t + 0.03)
    only_crops = JustInTimePlanner(clock=clock)
    only_crops.frame_prepared(0.002)
    only_crops.batch_started(0)
    clock.t += 0.03
    only_crops.batch_finished()
    assert only_crops.preparation_share(min_batches=0) is None
    only_crops.batch_started(2)
    assert only_crops.expected_free() is None  # nothing measured for frames yet


def test_prepare_ahead_reports_the_measured_share_and_stays_off_beside_a_cpu_encoder():
    from types import SimpleNamespace
    from clip_perception.core.pipeline.preparation import prepare_ahead

    every_core = SimpleNamespace(device="cpu", threads=0)
    ahead, why = prepare_ahead(every_core)
    assert not ahead and "%" not in why, why
    ahead, why = prepare_ahead(every_core, 0.076)
    assert not ahead and "7.6 % of its time per frame" in why, why
    # A GPU encoder leaves the CPU free whatever the share.
    assert prepare_ahead(SimpleNamespace(device="cuda:0", threads=0), 0.001)[0]


def test_planner_starts_preparing_one_preparation_before_the_predicted_end():
    clock = FakeClock()
    planner = JustInTimePlanner(clock=clock, alpha=0.5, margin=0.002, margin_fraction=0.25)
    assert planner.prepare_at(1) is None  # nothing measured: the encoder prepares its own
    planner = _primed_planner(clock, busy=0.1, prepare=0.01, alpha=0.5, margin=0.002,
                              margin_fraction=0.25)
    assert planner.prepare_at(1) is None  # idle encoder: it takes frames as they come
    start = clock.t
    planner.batch_started(1)
    assert planner.expected_free() == pytest.approx(start + 0.1)
    # lead = 1 x 10 ms preparation, + 2 ms + 25% of the lead as margin
    assert planner.prepare_at(1) == pytest.approx(start + 0.1 - 0.01 - 0.002 - 0.0025)
    assert planner.prepare_at(2) == pytest.approx(start + 0.1 - 0.02 - 0.002 - 0.005)
    clock.t += 0.2
    planner.batch_finished()  # this batch took 0.2 s: EMA (alpha 0.5) -> 0.15
    planner.batch_started(1)
    assert planner.expected_free() == pytest.approx(clock.t + 0.15)
    clock.t += 0.15
    planner.batch_finished()
    planner.batch_started(4)  # unseen size: scaled from the nearest measured one
    assert planner.expected_free() == pytest.approx(clock.t + 0.6)
    planner.batch_finished()


def test_planner_waits_for_the_rate_turn_when_it_is_later():
    clock = FakeClock()
    planner = _primed_planner(clock, busy=0.1, prepare=0.01)
    start = clock.t
    planner.batch_started(1, not_before=start + 0.5)  # max_rate_hz = 2
    assert planner.expected_free() == pytest.approx(start + 0.5)
    clock.t += 0.1
    planner.batch_finished()
    assert planner.expected_free() == pytest.approx(start + 0.5)  # idle, waiting for its turn
    clock.t = start + 0.6
    assert planner.expected_free() is None  # turn passed: frames are taken as they come


def _frame(camera, payload, received=0.0):
    return PendingFrame(camera, payload, received)


def test_prepared_frame_is_only_handed_out_for_the_exact_frame():
    wasted = []
    cache = PreparedFrames(wasted.append)
    old, new = _frame("a", 1), _frame("a", 2)
    cache.begin(old)
    cache.finish(PreparedFrame(old, np.zeros(1), ahead=True))
    assert cache.has(old) and not cache.has(new)
    # a newer frame of the camera was taken: the older preparation is discarded, not used
    assert cache.claim(new, timeout=0) is None and wasted == ["a"]
    assert not cache.has(old)
    cache.begin(new)
    cache.finish(PreparedFrame(new, np.ones(1), ahead=True))
    got = cache.claim(new, timeout=0)
    assert got.frame is new and got.crop[0] == 1
    assert cache.claim(new, timeout=0) is None  # handed out once


def test_claim_waits_for_a_preparation_in_progress():
    cache = PreparedFrames()
    frame = _frame("a", 1)
    cache.begin(frame)
    threading.Timer(0.05, cache.finish, args=(PreparedFrame(frame, np.zeros(1), ahead=True),)
                    ).start()
    got = cache.claim(frame, timeout=5)
    assert got is not None and got.frame is frame


def _jit_worker(cameras, encode, planner, published, prepared_by):
    """A worker whose decode/preprocess record which thread prepared which payload."""
    stats = PipelineStats(list(cameras))
    slots = LatestFrameSlots(list(cameras), stats)
    ls = label_set()

    def decode(camera, payload):
        if payload == "bad":
            raise ValueError("truncated image")
        return np.full((2, 2, 3), payload, np.uint8)

    def preprocess(rgb):
        prepared_by.append((int(rgb[0, 0, 0]), threading.current_thread().name))
        return rgb.astype(np.float32)

    def wrapped_encode(batch):
        encode(batch)
        return np.tile(ls.classifier.class_embeddings[0], (batch.shape[0], 1))

    worker = PerceptionWorker(slots, stats, lambda: ls, decode, preprocess, lambda c: c,
                              wrapped_encode, published.extend, planner=planner)
    return worker, slots, stats


def test_worker_prepares_just_in_time_and_a_newer_frame_supersedes_the_prepared_one():
    clock = FakeClock()
    planner = _primed_planner(clock, busy=0.1, prepare=0.01)  # prepare from start + ~0.086 s
    gate, encoding, encoded = threading.Event(), threading.Event(), []

    def encode(batch):
        encoded.append([int(v) for v in batch[:, 0, 0, 0]])
        encoding.set()
        assert gate.wait(5)

    published, prepared_by = [], []
    worker, slots, stats = _jit_worker(("a", "b"), encode, planner, published, prepared_by)
    bad = []
    worker._on_bad_frame = lambda camera, reason: bad.append((camera, reason))
    worker.start()
    try:
        slots.put("a", 1)
        assert encoding.wait(5)  # batch [1] is encoding, started at clock.t
        start = clock.t
        slots.put("a", 2)
        time.sleep(0.2)
        assert [p for p, _ in prepared_by] == [1], "prepared before the window opened"
        clock.t = start + 0.1  # predicted end: the window is open, the preparer takes frame 2
        slots.poke()
        assert wait_for(lambda: (2, "frame_preparer") in prepared_by)
        slots.put("a", 3)  # newer: supersedes the prepared frame 2
        slots.put("b", "bad")
        assert wait_for(lambda: (3, "frame_preparer") in prepared_by)
        assert wait_for(lambda: not slots.peek(8) or all(worker.prepared.has(f)
                                                          for f in slots.peek(8)))
        gate.set()
        assert wait_for(lambda: len(published) == 2)
    finally:
        gate.set()
        worker.stop()
    # frame 2 was prepared but never encoded; 3 was encoded from its preparation (not redone)
    assert encoded == [[1], [3]]
    assert [r.frame.payload for r in published] == [1, 3]
    assert prepared_by == [(1, "perception_worker"), (2, "frame_preparer"),
                           (3, "frame_preparer")]
    assert bad == [("b", "truncated image")]  # a bad frame prepared ahead is still rejected
    snap = stats.snapshot()
    assert snap.cameras["a"].dropped == 1 and snap.cameras["a"].processed == 2
    assert snap.cameras["b"].rejected == 1 and snap.cameras["b"].processed == 0
    assert (snap.prepared_ahead, snap.preparations_wasted) == (1, 1)


def test_worker_prepares_nothing_ahead_while_prepare_ahead_says_no():
    clock = FakeClock()
    gate, encoding = threading.Event(), threading.Event()

    def encode(batch):
        encoding.set()
        assert gate.wait(5)

    published, prepared_by = [], []
    worker, slots, stats = _jit_worker(("a",), encode, _primed_planner(clock), published,
                                       prepared_by)
    ahead = [False]  # e.g. a CPU encoder that uses every core, until a GPU engine swaps in
    worker._prepare_ahead = lambda: ahead[0]
    worker.start()
    try:
        slots.put("a", 1)
        assert encoding.wait(5)
        slots.put("a", 2)
        clock.t += 1.0  # long past the predicted end: the window is open
        slots.poke()
        time.sleep(0.2)
        gate.set()
        assert wait_for(lambda: len(published) == 2)
        assert worker._preparer is None  # never started: the worker runs as without one
        ahead[0] = True  # asked again after every batch
        slots.put("a", 3)
        assert wait_for(lambda: worker._preparer is not None and len(published) == 3)
    finally:
        gate.set()
        worker.stop()
    assert prepared_by[:2] == [(1, "perception_worker"), (2, "perception_worker")]
    assert not worker._preparer.is_alive()


def test_worker_never_encodes_an_older_frame_or_a_crop_of_another_frame():
    """Free-running threads with jittery timing: each encoded crop belongs to the published
    frame, and per camera the encoded frames only get newer."""
    rng = np.random.default_rng(0)
    encoded = []

    def encode(batch):
        encoded.extend(int(v) for v in batch[:, 0, 0, 0])
        time.sleep(float(rng.uniform(0.005, 0.03)))

    published, prepared_by = [], []
    worker, slots, stats = _jit_worker(("a", "b"), encode, JustInTimePlanner(), published,
                                       prepared_by)
    worker.start()
    try:
        seq = 0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            seq = seq % 250 + 1  # payloads are pixel values; cameras get odd/even ones
            slots.put("a" if seq % 2 else "b", seq)
            time.sleep(float(rng.uniform(0.0005, 0.006)))
    finally:
        worker.stop()
    assert encoded == [r.frame.payload for r in published]
    for cam in ("a", "b"):
        got = [r.frame.received for r in published if r.frame.camera == cam]
        assert got == sorted(got) and len(set(got)) == len(got)
    assert stats.snapshot().prepared_ahead > 0, "the preparer never prepared a used frame"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False

