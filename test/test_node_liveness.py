"""Liveness in /diagnostics and clean stops, with the node's encoder or label-set build held
in flight on purpose. The node runs in this process (node_harness.py), so the test can hold its
encoder, over real rclpy and DDS."""
from __future__ import annotations

import threading
import time

import pytest

from node_harness import Harness, HeldEncoder
from node_testing import wait_until

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")

from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from clip_perception.core.vocabulary import LabelSetBuilder  # noqa: E402
from clip_perception.ros.diagnostics import ERROR, WARN, level_of  # noqa: E402
from clip_perception.ros.node import STOP_TIMEOUT  # noqa: E402


@pytest.fixture
def harness(tiny_model_id):
    made = []

    def make(**params):
        h = Harness(tiny_model_id, "/liveness_test", **params)
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


def test_shutdown_during_a_label_set_build_returns_promptly(harness, monkeypatch):
    h = harness()
    original = LabelSetBuilder.build
    building, release = threading.Event(), threading.Event()

    def held_build(self, spec, version):
        if version > 1:
            building.set()
            release.wait(60)
        return original(self, spec, version)
    monkeypatch.setattr(LabelSetBuilder, "build", held_build)
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


def test_setting_the_same_value_again_retries_a_failed_build(harness, monkeypatch):
    """A background label-set build that failed leaves the accepted value in place; setting
    that value again must build again, not be ignored as 'unchanged'."""
    h = harness()
    original = LabelSetBuilder.build
    failures = []

    def flaky_build(self, spec, version):
        if version == 2:
            failures.append(version)
            raise RuntimeError("simulated text encoder fault")
        return original(self, spec, version)
    monkeypatch.setattr(LabelSetBuilder, "build", flaky_build)
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


def test_destroyed_node_leaves_the_graph_with_its_lifecycle_services(harness):
    """rclpy leaves a LifecycleNode's state machine to the garbage collector, and with it
    ~/change_state & co. and the DDS participant: the next node of that name in this process
    then shares its services with a zombie until some later collection tears it down (the flake
    where a later test's ~/change_state never became ready). destroy_node must do it."""
    h = harness()
    assert h.transition(Transition.TRANSITION_CONFIGURE)
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    node = h.node  # held, so the garbage collector cannot do destroy_node's job
    assert wait_until(lambda: h.name + "_intake" in h.node_names(), 10)
    h.destroy_node()

    def gone():
        servers = h.service_servers("change_state")
        return not any(servers.values()) and not {h.name, h.name + "_intake"} & h.node_names()
    assert wait_until(gone, 10), (f"still in the graph: {h.node_names()}, change_state "
                                  f"{h.service_servers('change_state')}")
    assert node.state == "finalized"
