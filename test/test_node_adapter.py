"""A live ``adapter_path`` over the standard ~/set_parameters service: the parameter callback
checks only the adapter's metadata and tensor header (and answers at once); the tensors are
loaded and checked by the background label-set build. The node runs in this process
(node_harness.py) so the test can hold the weight loading."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from label_sets import with_nan_values
from node_harness import Harness
from node_testing import wait_until

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")

from lifecycle_msgs.msg import Transition  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402

from clip_perception.ros.diagnostics import ERROR, level_of  # noqa: E402

LABELS = ["cup", "apple"]


@pytest.fixture(scope="module")
def model(tiny_model_id):
    from clip_perception.core.model import load_clip

    return load_clip(tiny_model_id)


def write_head(path, clip, labels, bias, weights_hash=None) -> str:
    """An adapter for ``clip`` whose classifier bias decides the top label."""
    from clip_perception.core.adapter import save_adapter

    dim, rng = clip.embed_dim, np.random.default_rng(1)
    tensors = {"fc1.weight": rng.normal(size=(8, dim)), "fc1.bias": np.zeros(8),
               "fc2.weight": np.zeros((dim, 8)), "fc2.bias": np.zeros(dim),
               "classifier.weight": rng.normal(size=(len(labels), dim)) * 0.01,
               "classifier.bias": np.asarray(bias, float), "logit_scale": np.asarray([1.0])}
    return str(save_adapter(path, tensors, {
        "labels": list(labels), "weights_hash": weights_hash or clip.weights_hash,
        "model_identifier": clip.identifier, "blend": 1.0}))


class AdapterHarness(Harness):
    def __init__(self, tiny_model_id, **params):
        super().__init__(tiny_model_id, "/adapter_test", labels=LABELS, **params)
        self.set_client = self.client.create_client(SetParameters,
                                                    self.name + "/set_parameters")

    def set_adapter_async(self, path: str):
        """~/set_parameters for adapter_path; the future of its response."""
        assert wait_until(self.set_client.service_is_ready, 30, 0.05), \
            f"set_parameters not ready: {self.service_servers('set_parameters')}"
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=path)
        return self.set_client.call_async(SetParameters.Request(
            parameters=[ParameterMsg(name="adapter_path", value=value)]))

    def set_adapter(self, path: str):
        future = self.set_adapter_async(path)
        assert wait_until(future.done, 30), "set_parameters timed out"
        (result,) = future.result().results
        return result

    def top_label(self):
        out = self.result_for_new_frames()
        assert out is not None, "no results"
        return out.results[0].class_id


@pytest.fixture
def harness(tiny_model_id):
    made = []

    def make(**params):
        h = AdapterHarness(tiny_model_id, **params)
        made.append(h)
        assert h.transition(Transition.TRANSITION_CONFIGURE), h.node.last_failure
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        return h
    yield make
    for h in made:
        h.close()


@pytest.fixture
def loads(monkeypatch):
    """Every load of adapter tensors (safetensors.numpy.load_file), by thread name; a test can
    make them block until ``release`` is set."""
    import safetensors.numpy

    real = safetensors.numpy.load_file
    record = type("Loads", (), {})()
    record.threads, record.entered = [], threading.Event()
    record.hold, record.release = threading.Event(), threading.Event()

    def load_file(*args, **kwargs):
        record.threads.append(threading.current_thread().name)
        record.entered.set()
        if record.hold.is_set():
            record.release.wait(60)
        return real(*args, **kwargs)
    monkeypatch.setattr(safetensors.numpy, "load_file", load_file)
    yield record
    record.release.set()


def test_adapter_the_metadata_refuses_is_rejected_at_once(harness, model, tmp_path, loads):
    h = harness()
    version = h.node.label_sets.current.version
    other_model = write_head(tmp_path / "other.safetensors", model, LABELS, [0, 0], "0" * 64)
    wrong_labels = write_head(tmp_path / "labels.safetensors", model, ["cup", "banana"], [0, 0])
    result = h.set_adapter(other_model)
    assert not result.successful and "trained on model" in result.reason, result.reason
    result = h.set_adapter(wrong_labels)
    assert not result.successful and "banana" in result.reason, result.reason
    result = h.set_adapter(str(tmp_path / "missing.safetensors"))
    assert not result.successful and "not found" in result.reason, result.reason
    assert loads.threads == [], "the parameter callback loaded adapter tensors"
    assert not h.node.label_sets.busy and h.node.label_sets.current.version == version
    assert h.node.get_parameter("adapter_path").value == ""


def test_callback_answers_while_the_weights_load_in_the_background(harness, model, tmp_path,
                                                                   loads):
    h = harness()
    good = write_head(tmp_path / "good.safetensors", model, ["apple", "cup"], [30.0, 0.0])
    loads.hold.set()
    future = h.set_adapter_async(good)
    # The response comes while every tensor load is held: the callback loaded nothing (had it
    # called load_file, it would block until release and this wait would time out).
    assert wait_until(future.done, 30), "set_parameters did not answer while loading was held"
    (result,) = future.result().results
    assert result.successful, result.reason
    assert loads.entered.wait(30), "the background build never loaded the adapter"
    assert loads.threads == ["label_set_builder"]
    assert h.node.label_sets.busy and h.node.label_sets.current.spec.adapter_path == ""
    loads.release.set()
    assert h.node.label_sets.wait_for(2, 30), h.node.label_sets.last_error
    assert wait_until(lambda: h.top_label() == "apple", 20), "the adapter never took effect"


def test_adapter_with_broken_tensors_fails_in_the_build_and_a_retry_reads_it_again(
        harness, model, tmp_path, loads):
    h = harness()
    path = with_nan_values(write_head(tmp_path / "head.safetensors", model, LABELS, [0, 30.0]))
    loads.threads.clear()  # with_nan_values' own load
    manager = h.node.label_sets
    result = h.set_adapter(path)
    assert result.successful, result.reason  # its header is fine
    assert manager.wait_for(2, 30) is False and manager.failed_version == 2
    status = h.pipeline_status_while_sending(
        lambda s: level_of(s) == ERROR and "non-finite values" in s.message)
    assert status is not None, "/diagnostics did not report the failed adapter load"
    assert "serving label set v1" in status.message, status.message
    assert manager.current.version == 1 and manager.current.adapter is None
    assert sorted(x.class_id for x in h.result_for_new_frames().results) == sorted(LABELS)

    # Setting the same value again reads the file again: still broken, then repaired.
    result = h.set_adapter(path)
    assert result.successful, result.reason
    assert manager.wait_for(3, 30) is False and manager.failed_version == 3
    write_head(tmp_path / "head.safetensors", model, LABELS, [0, 30.0])
    result = h.set_adapter(path)
    assert result.successful, result.reason
    assert manager.wait_for(4, 30), manager.last_error
    assert loads.threads == ["label_set_builder"] * 3
    assert wait_until(lambda: h.top_label() == "apple", 20), "the repaired adapter never served"


def test_bad_adapter_at_configure_fails_configure_with_the_reason(tiny_model_id, model,
                                                                  tmp_path):
    path = with_nan_values(write_head(tmp_path / "head.safetensors", model, LABELS, [0, 0]))
    h = AdapterHarness(tiny_model_id, adapter_path=path)
    try:
        assert h.transition(Transition.TRANSITION_CONFIGURE) is False
        assert "adapter_path" in h.node.last_failure and "non-finite values" in \
            h.node.last_failure, h.node.last_failure
        assert h.node.state == "unconfigured"
    finally:
        h.close()
