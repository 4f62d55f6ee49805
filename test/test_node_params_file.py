"""The shipped params file applies to the node whatever its namespace (real rclpy process)."""
import pytest
import yaml

from node_testing import REPO, NodeProcess, wait_until

pytest.importorskip("vision_msgs.msg", reason="vision_msgs is built by scripts/setup_venv.sh")


@pytest.mark.parametrize("namespace", ["", "/robot1"])
def test_params_file_applies_in_any_namespace(tmp_path, tiny_model_id, namespace):
    config = yaml.safe_load((REPO / "config" / "clip_perception.yaml").read_text())
    params = config["/**"]["ros__parameters"]
    # Only `model` changes: the shipped empty `pretrained` means "the model's own default",
    # so a local-dir: model starts without also clearing `pretrained`.
    assert params["pretrained"] == ""
    params.update(model=tiny_model_id, backend="torch",
                  labels=["alpha", "beta"], image_topics=["/ns_test/image"])
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))
    extra = ("-r", f"__ns:={namespace}") if namespace else ()
    proc = NodeProcess(tmp_path / "node.log", {}, params_file=params_file, extra_ros_args=extra)
    try:
        # The startup log states the labels and topics of the parameters in effect.
        wait_until(lambda: "listening on" in proc.output() or proc.proc.poll() is not None, 60)
        out = proc.output()
        assert "label set v1 ready: 2 labels" in out, out
        assert "listening on /ns_test/image" in out, out
        assert f"[{namespace.strip('/') + '.' if namespace else ''}clip_perception]" in out, out
    finally:
        proc.stop()


def test_backend_choice_reaches_the_ros_log(tmp_path, tiny_model_id):
    """Core logging (why each backend was skipped) is forwarded to the node's ROS logger."""
    proc = NodeProcess(tmp_path / "node.log", dict(
        model=tiny_model_id, pretrained="", backend="auto", precision="auto",
        engine_cache_dir=str(tmp_path / "cache"), image_topics=["/log_test/image"]))
    try:
        wait_until(lambda: "listening on" in proc.output() or proc.proc.poll() is not None, 90)
        out = proc.output()
        assert "[clip_perception]: image backend (auto requested): tensorrt auto on cpu: " \
               "skipped (device is 'cpu'; tensorrt needs device 'cuda')" in out, out
        # precision auto: the verified candidates are timed; the fastest one is logged as chosen
        assert "on cpu: chosen (fastest verified: " in out, out
        # quiet: no bare Python logging/warnings lines from onnxruntime's quantiser or torch
        assert "WARNING:root" not in out and "UserWarning" not in out, out
        assert "DeprecationWarning" not in out, out
    finally:
        proc.stop()


def test_malformed_ros_args_exit_2_with_the_reason(tmp_path):
    import subprocess
    import sys

    from node_testing import ros_env

    proc = subprocess.run([sys.executable, "-m", "clip_perception.cli.node", "--ros-args", "-p"],
                          capture_output=True, text=True, env=ros_env(), timeout=60)
    assert proc.returncode == 2
    assert "clip_perception_node: invalid arguments: " in proc.stderr
    assert "Traceback" not in proc.stderr
