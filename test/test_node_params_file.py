"""The shipped params file applies to the node whatever its namespace (real rclpy process), and
the core's logging (why each backend was skipped or chosen) reaches the node's ROS log."""
import pytest
import yaml

from node_testing import REPO, START_TIMEOUT, NodeProcess, wait_until

pytest.importorskip("vision_msgs.msg", reason="vision_msgs is built by scripts/setup_venv.sh")


def _check_backend_log(out: str) -> None:
    """Core logging (why each backend was skipped) is forwarded to the node's ROS logger."""
    assert "[clip_perception]: image backend (auto requested): tensorrt auto on cpu: " \
           "skipped [this machine lacks a CUDA device (device is 'cpu')] (device is 'cpu'; " \
           "tensorrt needs device 'cuda')" in out, out
    # precision auto: the verified candidates are timed (or an earlier test's decision in the
    # session's shared engine cache is re-verified); the fastest one is logged as chosen
    assert ("on cpu: chosen (fastest verified: " in out or
            "on cpu: chosen (fastest verified here, decided " in out), out
    # quiet: no bare Python logging/warnings lines from onnxruntime's quantiser or torch
    assert "WARNING:root" not in out and "UserWarning" not in out, out
    assert "DeprecationWarning" not in out, out


@pytest.mark.parametrize("namespace", ["", "/robot1"])
def test_params_file_applies_in_any_namespace(tmp_path, tiny_model_id, namespace,
                                              engine_cache_dir):
    """In the root namespace the node also runs the shipped backend/precision ``auto`` (one
    process for both checks); under /robot1 the torch backend starts fastest."""
    config = yaml.safe_load((REPO / "config" / "clip_perception.yaml").read_text())
    params = config["/**"]["ros__parameters"]
    # Only `model` changes: the shipped empty `pretrained` means "the model's own default",
    # so a local-dir: model starts without also clearing `pretrained`.
    assert params["pretrained"] == ""
    assert (params["backend"], params["precision"]) == ("auto", "auto")
    params.update(model=tiny_model_id, labels=["alpha", "beta"], image_topics=["/ns_test/image"],
                  engine_cache_dir=str(engine_cache_dir))
    if namespace:
        params.update(backend="torch")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))
    extra = ("-r", f"__ns:={namespace}") if namespace else ()
    proc = NodeProcess(tmp_path / "node.log", {}, params_file=params_file, extra_ros_args=extra)
    try:
        # The startup log states the labels and topics of the parameters in effect. (A process
        # start on 2 cores shared with other jobs took up to ~90 s: wait long, fail clearly.)
        started = wait_until(lambda: "listening on" in proc.output()
                             or proc.proc.poll() is not None, START_TIMEOUT)
        out = proc.output()
        assert started and proc.proc.poll() is None, f"not started in {START_TIMEOUT} s:\n{out}"
        assert "label set v1 ready: 2 labels" in out, out
        assert "listening on /ns_test/image" in out, out
        assert f"[{namespace.strip('/') + '.' if namespace else ''}clip_perception]" in out, out
        if not namespace:
            _check_backend_log(out)
    finally:
        proc.stop()


def test_malformed_ros_args_exit_2_with_the_reason(capfd):
    """main itself, in this process (a process start would add only its import time)."""
    from clip_perception.cli.node import main

    assert main(["clip_perception_node", "--ros-args", "-p"]) == 2
    err = capfd.readouterr().err
    assert "clip_perception_node: invalid arguments: " in err
    assert "Traceback" not in err
