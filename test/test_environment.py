"""The venv made by scripts/setup_venv.sh has everything the package and its tests import."""
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "rclpy",
        "rclpy.serialization",
        "vision_msgs.msg",
        "std_msgs.msg",
        "sensor_msgs.msg",
        "diagnostic_msgs.msg",
        "open_clip",
        "onnxruntime",
        "albumentations",
        "rosbags",
        "rosbags.image",
        "rclpy.lifecycle",
        "lifecycle_msgs.srv",
        "cv2",
    ],
)
def test_module_imports(module):
    importlib.import_module(module)


def test_vision_msgs_fields_match_upstream():
    from vision_msgs.msg import Classification, ObjectHypothesis

    assert Classification.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "results": "sequence<vision_msgs/ObjectHypothesis>",
    }
    assert ObjectHypothesis.get_fields_and_field_types() == {
        "class_id": "string",
        "score": "double",
    }


def test_label_info_fields_match_upstream():
    from vision_msgs.msg import LabelInfo, VisionClass

    assert LabelInfo.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "class_map": "sequence<vision_msgs/VisionClass>",
        "threshold": "float",
    }
    assert VisionClass.get_fields_and_field_types() == {"class_id": "uint16",
                                                        "class_name": "string"}


def test_ros_environment_is_set_for_plain_pytest():
    """conftest.py sets what the node tests need even without scripts/run_tests.sh."""
    import os
    from pathlib import Path

    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()


def test_classification_serialisation_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Classification, ObjectHypothesis

    msg = Classification()
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec = 1_700_000_000
    msg.header.stamp.nanosec = 123_456_789
    msg.results = [
        ObjectHypothesis(class_id="a red door", score=0.75),
        ObjectHypothesis(class_id="cup", score=0.125),
    ]
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0

    back = deserialize_message(data, Classification)
    assert back == msg
    assert [(h.class_id, h.score) for h in back.results] == [("a red door", 0.75), ("cup", 0.125)]
    assert back.header.frame_id == "camera_optical"
