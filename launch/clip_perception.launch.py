"""Start clip_perception_node with a params file, camera topics and a namespace.

    ros2 launch clip_perception clip_perception.launch.py \
        image_topics:="['/front/image_raw', '/rear/image_raw/compressed']" namespace:=robot1

Arguments:
  params_file   parameters YAML (default: this package's config/clip_perception.yaml)
  image_topics  overrides image_topics when not empty, as a YAML list string
  model, pretrained, backend, precision
                override the node's parameter of the same name when not empty, e.g.
                model:=local-dir:/models/vit_b_32 or backend:=onnxruntime precision:=fp32
  namespace     namespace of the node (its outputs are <namespace>/clip_perception/...)
  autostart     true (default): the node configures and activates itself, as an unmanaged
                node; false: it waits unconfigured for a lifecycle manager (Nav2's
                lifecycle_manager with node_names: [clip_perception]) or
                `ros2 lifecycle set /clip_perception configure` / `activate`
  fastdds_profile  Fast DDS XML profile for the processes this launch starts; default:
                config/fastdds_shm.xml (16 MB shared-memory segment). '' keeps the environment.
                The segment that matters is the SENDER's: a camera driver started elsewhere
                needs FASTDDS_DEFAULT_PROFILES_FILE set in its own environment, or best-effort
                640x480 frames are dropped (see config/fastdds_shm.xml).
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


# Launch arguments that override the node parameter of the same name when not empty.
ENGINE_ARGUMENTS = {
    "model": "CLIP model: open_clip name, hf-hub:org/repo or local-dir:/path",
    "pretrained": "pretrained tag or checkpoint path",
    "backend": "auto, tensorrt, openvino, onnxruntime or torch",
    "precision": "auto, fp32, fp16, bf16 or int8",
}


def _node(context):
    params = [LaunchConfiguration("params_file").perform(context)]
    overrides = {name: LaunchConfiguration(name).perform(context).strip()
                 for name in ENGINE_ARGUMENTS}
    params.append({name: value for name, value in overrides.items() if value})
    topics = LaunchConfiguration("image_topics").perform(context).strip()
    if topics:
        parsed = yaml.safe_load(topics)
        if isinstance(parsed, str):
            parsed = [parsed]
        if not isinstance(parsed, list) or not all(isinstance(t, str) for t in parsed):
            raise ValueError(f"image_topics must be a list of topic names, got {topics!r}")
        params.append({"image_topics": parsed})
    autostart = LaunchConfiguration("autostart").perform(context).strip().lower()
    if autostart not in ("true", "false"):
        raise ValueError(f"autostart must be true or false, got {autostart!r}")
    params.append({"autostart": autostart == "true"})
    return [Node(package="clip_perception", executable="clip_perception_node",
                 name="clip_perception",
                 namespace=LaunchConfiguration("namespace").perform(context),
                 parameters=params, output="screen", emulate_tty=True)]


def generate_launch_description():
    share = get_package_share_directory("clip_perception")
    profile = LaunchConfiguration("fastdds_profile")
    return LaunchDescription([
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "clip_perception.yaml"),
                              description="Parameters YAML for the node"),
        DeclareLaunchArgument("image_topics", default_value="",
                              description="Camera topics as a YAML list; empty: from params_file"),
        *[DeclareLaunchArgument(name, default_value="",
                                description=f"{text}; empty: from params_file")
          for name, text in ENGINE_ARGUMENTS.items()],
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure + activate at start; false: leave it to a "
                                          "lifecycle manager"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                              description="Fast DDS XML profile ('' = leave the environment)"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile,
                               condition=IfCondition(PythonExpression(["'", profile, "' != ''"]))),
        OpaqueFunction(function=_node),
    ])
