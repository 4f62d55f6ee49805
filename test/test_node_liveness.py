"""Liveness in /diagnostics and clean stops, with the node's encoder or label-set build held
in flight on purpose. The node runs in this process (so the test can hold its encoder), over
real rclpy and DDS: frames, /diagnostics, results and ~/change_state go through topics and
services exactly as from another process."""
from __future__ import annotations

import itertools
import threading
import time

import pytest

from node_testing import (Collector, image_msg, pattern_image, stamp_ns,
                          use_profile_in_this_process, wait_until)

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from clip_perception.ros.diagnostics import ERROR, WARN, level_of  # noqa: E402
from clip_perception.ros.node import STOP_TIMEOUT, ClipPerceptionNode  # noqa: E402

NODE = "/liveness_test/clip_perception"
CAM = "/liveness_test/image_raw"
_stamps = itertools.count(1_900_000_000 * 10 ** 9, 1_000_000)


class HeldEncoder:
    """The node's real encoder, except while ``hold`` (blocks in encode_images until released)
    or ``fail`` (raises) is set."""

    def __init__(self, inner):
        self._inner = inner
        self.hold, self.fail = threading.Event(), threading.Event()
        self.release, self.entered, self.returned = (threading.Event(), threading.Event(),
                                                     threading.Event())

    def encode_images(self, batch):
        if self.fail.is_set():
            raise RuntimeError("simulated encoder fault")
        if self.hold.is_set():
            self.entered.set()
            self.release.wait(60)
            out = self._inner.encode_images(batch)
            self.returned.set()
            return out
        return self._inner.encode_images(batch)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Harness:
    def __init__(self, tiny_model_id, **params):
        use_profile_in_this_process()
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        values = dict(model=tiny_model_id, backend="torch", autostart=False,
                      image_topics=[CAM], labels=["cup", "apple"],
                      prompt_templates=["a photo of a {}."], stall_timeout=1.0)
        values.update(params)
        self.node = ClipPerceptionNode(
            namespace="/liveness_test", context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.client = rclpy.create_node("liveness_client", context=self.context)
        self.pub = self.client.create_publisher(Image, CAM, QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.results, self.diagnostics = Collector(), Collector()
        self.client.create_subscription(Classification, NODE + "/classification",
                                        self.results, 50)
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics, 50)
        self.change = self.client.create_client(ChangeState, NODE + "/change_state")
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.destroyed = False

    def transition(self, transition_id: int, timeout: float = 60.0) -> bool:
        assert wait_until(self.change.service_is_ready, 30, 0.05)
        future = self.change.call_async(ChangeState.Request(
            transition=Transition(id=transition_id)))
        assert wait_until(future.done, timeout), "change_state timed out"
        return future.result().success

    def send(self, frame_id: str = "live") -> int:
        stamp = next(_stamps)
        self.pub.publish(image_msg(pattern_image(48, 64), stamp, frame_id))
        return stamp

    def result_for_new_frames(self, timeout: float = 20.0):
        sent: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent.add(self.send())
            found = self.results.wait_for(
                lambda msgs: next((m for m in msgs if stamp_ns(m) in sent), None), 0.5)
            if found is not None:
                return found
        return None

    def pipeline_status_while_sending(self, predicate, timeout: float = 15.0):
        """Keep frames coming (a camera at ~10 Hz) until a pipeline status satisfies predicate."""
        start = len(self.diagnostics.messages)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send()
            for msg in self.diagnostics.messages[start:]:
                for s in msg.status:
                    if s.name == f"{NODE}: pipeline" and predicate(s):
                        return s
            time.sleep(0.1)
        return None

    def destroy_node(self):
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.destroyed = True

    def close(self):
        self.executor.shutdown()
        if not self.destroyed:
            self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)


@pytest.fixture
def harness(tiny_model_id):
    made = []

    def make(**params):
        h = Harness(tiny_model_id, **params)
        made.append(h)
        return h
    yield make
    for h in made:
        h.close()


def _active_with_held_encoder(h: Harness) -> HeldEncoder:
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    held = HeldEncoder(h.node.encoder)
    h.node.encoder = held  # before activate: the worker takes its encoder from the node then
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.result_for_new_frames() is not None, "no results before holding the encoder"
    return held


def test_hung_encoder_warns_stalled_and_deactivate_abandons_it(harness, capfd):
    h = harness()
    held = _active_with_held_encoder(h)
    held.hold.set()
    status = h.pipeline_status_while_sending(lambda s: level_of(s) == WARN
                                             and s.message.startswith("stalled"))
    assert status is not None, "/diagnostics never reported the hung encoder"
    assert held.entered.is_set() and not held.returned.is_set()
    assert "stall_timeout 1 s" in status.message, status.message
    worker = h.node.worker

    start = time.monotonic()
    assert h.transition(Transition.TRANSITION_DEACTIVATE)
    assert time.monotonic() - start < STOP_TIMEOUT + 5, "deactivate waited for the hung encode"
    h.results.clear()
    held.hold.clear()
    held.release.set()  # the abandoned encode now returns: its result must not be sent
    assert held.returned.wait(10)
    worker.stop(10)  # joins the abandoned worker thread, which exits after that batch
    assert not worker.alive
    assert h.results.wait_for(lambda msgs: msgs, 1.0) is None, "result sent after deactivate"
    assert "publishing failed" not in capfd.readouterr().err
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.result_for_new_frames() is not None, "no results after re-activation"


def test_encoder_that_keeps_failing_is_an_error(harness):
    h = harness()
    held = _active_with_held_encoder(h)
    held.fail.set()
    status = h.pipeline_status_while_sending(lambda s: level_of(s) == ERROR
                                             and s.message.startswith("encoder keeps failing"))
    assert status is not None, "/diagnostics never reported the failing encoder"
    assert "simulated encoder fault" in status.message
    held.fail.clear()
    assert h.result_for_new_frames() is not None, "no results once the encoder recovered"
    status = h.pipeline_status_while_sending(lambda s: level_of(s) < ERROR)
    assert status is not None, "still ERROR after the encoder recovered"


def test_dead_worker_is_an_error(harness):
    h = harness()
    _active_with_held_encoder(h)

    def broken_take(*args, **kwargs):
        raise RuntimeError("simulated worker crash")
    h.node.slots.take = broken_take  # the worker loop's next take raises out of its thread
    status = h.pipeline_status_while_sending(
        lambda s: level_of(s) == ERROR and "worker thread is not running" in s.message)
    assert status is not None, "/diagnostics never reported the dead worker"


def test_shutdown_during_a_label_set_build_returns_promptly(harness):
    h = harness()
    original = h.node._build_label_set
    building, release = threading.Event(), threading.Event()

    def held_build(clip, cache, spec, adapter, version):
        if version > 1:
            building.set()
            release.wait(60)
        return original(clip, cache, spec, adapter, version)
    h.node._build_label_set = held_build  # before configure: the builder takes it from there
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    result = h.node.set_parameters([Parameter("labels", value=["dog", "cat", "bird"])])
    assert result[0].successful, result[0].reason
    assert building.wait(10), "the label-set build did not start"
    manager = h.node.label_sets
    start = time.monotonic()
    h.destroy_node()  # what SIGINT ends in, with the build in flight
    assert time.monotonic() - start < STOP_TIMEOUT + 5
    assert h.node.state == "finalized" and h.node.worker is None and h.node.encoder is None
    release.set()  # the abandoned build finishes on its daemon thread without effect
    assert wait_until(lambda: manager.current.version == 2 or manager.failed_version == 2, 20)
    assert manager.failed_version is None, manager.last_error


def test_setting_the_same_value_again_retries_a_failed_build(harness):
    """A background label-set build that failed leaves the accepted value in place; setting
    that value again must build again, not be ignored as 'unchanged'."""
    h = harness()
    original = h.node._build_label_set
    failures = []

    def flaky_build(clip, cache, spec, adapter, version):
        if version == 2:
            failures.append(version)
            raise RuntimeError("simulated text encoder fault")
        return original(clip, cache, spec, adapter, version)
    h.node._build_label_set = flaky_build
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    new = ["dog", "cat", "bird"]
    (r,) = h.node.set_parameters([Parameter("labels", value=new)])
    assert r.successful, r.reason
    manager = h.node.label_sets
    assert manager.wait_for(2, 20) is False and failures == [2]
    status = h.pipeline_status_while_sending(
        lambda s: level_of(s) == ERROR and "simulated text encoder fault" in s.message)
    assert status is not None, "/diagnostics did not report the failed build"
    (r,) = h.node.set_parameters([Parameter("labels", value=new)])  # the same value again
    assert r.successful, r.reason
    assert manager.wait_for(3, 20), "setting the same labels again did not rebuild"
    out = h.result_for_new_frames()
    assert out is not None and sorted(x.class_id for x in out.results) == sorted(new)
