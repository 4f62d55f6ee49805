"""The launch file, as far as it can be checked without `ros2 launch` (not on this machine)."""
import ast
import sys
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "clip_perception.launch.py"


def test_launch_file_parses_and_declares_its_arguments():
    tree = ast.parse(LAUNCH.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    engine_arguments = next(ast.literal_eval(n.value) for n in tree.body
                            if isinstance(n, ast.Assign) and n.targets[0].id == "ENGINE_ARGUMENTS")
    declared = {call.args[0].value for call in ast.walk(tree)
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") ==
                "DeclareLaunchArgument" and isinstance(call.args[0], ast.Constant)}
    assert declared == {"params_file", "image_topics", "namespace", "fastdds_profile",
                        "autostart"}
    assert set(engine_arguments) == {"model", "pretrained", "backend", "precision"}
    nodes = [call for call in ast.walk(tree) if isinstance(call, ast.Call)
             and getattr(call.func, "id", "") == "Node"]
    kwargs = {kw.arg: kw.value for kw in nodes[0].keywords}
    assert kwargs["package"].value == "clip_perception"
    assert kwargs["executable"].value == "clip_perception_node"
    assert kwargs["name"].value == "clip_perception"


def test_config_yaml_is_valid_for_the_node():
    """The shipped YAML has ros__parameters under "/**" (so it applies in any namespace) and
    passes validate()."""
    import yaml

    from clip_perception.ros.parameters import PARAMETERS, PARAMETERS_BY_NAME, validate

    config = yaml.safe_load((LAUNCH.parents[1] / "config" / "clip_perception.yaml").read_text())
    params = config["/**"]["ros__parameters"]
    unknown = set(params) - set(PARAMETERS_BY_NAME)
    assert not unknown, f"YAML has parameters the node does not declare: {unknown}"
    for name, value in params.items():  # rclpy does not convert 0 to 0.0: types must match
        expected = {"string": str, "string[]": list, "integer": int,
                    "double": float, "bool": bool}[PARAMETERS_BY_NAME[name].type]
        assert type(value) is expected, (name, value)
    values = {p.name: p.default for p in PARAMETERS}
    values.update(params)
    validate(values)


def _ament_prefix(root: Path) -> Path:
    """A throw-away ament prefix holding this checkout as the clip_perception package, so the
    launch file's get_package_share_directory works without an installed, sourced package."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "clip_perception").write_text("")
    share = root / "share" / "clip_perception"
    share.mkdir()
    for name in ("launch", "config", "package.xml"):
        (share / name).symlink_to(LAUNCH.parents[1] / name)
    return root


def test_temporary_ament_prefix_resolves_the_package(tmp_path, monkeypatch):
    from ament_index_python.packages import get_package_share_directory

    prefix = _ament_prefix(tmp_path / "prefix")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    share = Path(get_package_share_directory("clip_perception"))
    assert (share / "launch" / LAUNCH.name).is_file()
    assert (share / "config" / "clip_perception.yaml").is_file()


def test_generate_launch_description_when_launch_ros_is_installed(tmp_path, monkeypatch):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed here (no PyPI/Debian "
                                             "package); run on a ROS 2 install")
    import importlib.util

    # Its own ament index: on a ROS machine AMENT_PREFIX_PATH may be unset or name an install
    # without this package; the test must not depend on either.
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(_ament_prefix(tmp_path / "prefix")))
    spec = importlib.util.spec_from_file_location("clip_perception_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert names == {"params_file", "image_topics", "namespace", "fastdds_profile",
                     "autostart", "model", "pretrained", "backend", "precision"}


class _Recorded:
    """A stand-in launch/launch_ros class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    @property
    def name(self):
        return self.args[0]


class _LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context[self.args[0]]


def _fake_launch(monkeypatch):
    """launch / launch_ros as far as the launch file uses them (not installable here)."""
    import types

    modules = {
        "launch": {"LaunchDescription": _Recorded},
        "launch.actions": {n: type(n, (_Recorded,), {}) for n in
                           ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable")},
        "launch.conditions": {"IfCondition": _Recorded},
        "launch.substitutions": {"LaunchConfiguration": _LaunchConfiguration,
                                 "PythonExpression": _Recorded},
        "launch_ros": {}, "launch_ros.actions": {"Node": type("Node", (_Recorded,), {})},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)


def test_engine_launch_arguments_override_the_params_file(tmp_path, monkeypatch):
    """model:=..., backend:=... reach the node as parameters after params_file; empty ones
    leave the params file's values."""
    import importlib.util

    _fake_launch(monkeypatch)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(_ament_prefix(tmp_path / "prefix")))
    spec = importlib.util.spec_from_file_location("clip_perception_launch_fake", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.name: e.kwargs["default_value"] for e in entities
                if type(e).__name__ == "DeclareLaunchArgument"}
    assert {k: declared[k] for k in ("model", "pretrained", "backend", "precision")} == \
        {"model": "", "pretrained": "", "backend": "", "precision": ""}
    opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")
    context = {"params_file": "robot.yaml", "image_topics": "", "namespace": "robot1",
               "autostart": "true", "model": "local-dir:/models/vit", "pretrained": " ",
               "backend": "onnxruntime", "precision": ""}
    (node,) = opaque.kwargs["function"](context)
    assert node.kwargs["name"] == "clip_perception" and node.kwargs["namespace"] == "robot1"
    assert node.kwargs["parameters"] == [
        "robot.yaml", {"model": "local-dir:/models/vit", "backend": "onnxruntime"},
        {"autostart": True}]
