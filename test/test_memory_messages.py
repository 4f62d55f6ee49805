"""Place-memory message conversions without a node: pose messages -> Pose (rclpy messages,
same code as for bag messages), Place -> clip_perception_msgs/Place, markers; the venv has
clip_perception_msgs; the tf2 path where tf2_ros imports."""
import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
# no skip for clip_perception_msgs: scripts/setup_venv.sh builds it into the venv

from clip_perception.core.memory import Keyframe, PlaceMemoryError, Pose  # noqa: E402
from clip_perception.core.memory.places import Place  # noqa: E402
from clip_perception.core.memory.pose_messages import pose_sample  # noqa: E402
from clip_perception.ros.place_messages import (markers, place_message,  # noqa: E402
                                                pose_message_type, score_colors)


def quat(yaw):
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def test_the_venv_has_clip_perception_msgs_with_the_issue_fields():
    from clip_perception_msgs.msg import Place as PlaceMsg
    from clip_perception_msgs.srv import QueryPlaces

    assert PlaceMsg.get_fields_and_field_types() == {
        "pose": "geometry_msgs/PoseStamped", "score": "float", "scores": "sequence<float>",
        "stamp": "builtin_interfaces/Time", "camera": "string", "keyframe_id": "uint64"}
    assert QueryPlaces.Request.get_fields_and_field_types() == {
        "texts": "sequence<string>", "image": "sensor_msgs/Image", "k": "int32",
        "min_separation": "double"}
    assert QueryPlaces.Response.get_fields_and_field_types() == {
        "places": "sequence<clip_perception_msgs/Place>"}


@pytest.mark.parametrize("pose_type", ["odometry", "pose_stamped", "pose_with_covariance"])
def test_every_pose_topic_type_gives_the_pose_at_its_stamp(pose_type):
    cls, msgtype = pose_message_type(pose_type)
    msg = cls()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 500
    msg.header.frame_id = "/map"
    pose = msg.pose if pose_type == "pose_stamped" else msg.pose.pose
    pose.position.x, pose.position.y = 1.5, -2.0
    pose.orientation.z, pose.orientation.w = quat(0.3)[2:]
    stamp, p = pose_sample(msgtype, msg)
    assert stamp == 12 * 10 ** 9 + 500 and p.frame_id == "map"
    assert p.position == pytest.approx((1.5, -2.0, 0.0)) and p.yaw == pytest.approx(0.3)


def test_a_pose_sample_with_a_zero_quaternion_is_refused_with_its_stamp():
    cls, msgtype = pose_message_type("pose_stamped")
    msg = cls()
    msg.pose.orientation.w = 0.0
    msg.header.stamp.sec = 7
    with pytest.raises(PlaceMemoryError, match=r"PoseStamped at 7\.000000000: .*no direction"):
        pose_sample(msgtype, msg)


def test_place_message_carries_pose_scores_stamp_camera_and_id():
    kf = Keyframe(np.ones(4, np.float32) / 2, Pose((1, 2, 0), quat(0.5), "map"),
                  1_700_000_000_250_000_000, "/cam", keyframe_id=42)
    msg = place_message(Place(kf, 0.7, (0.6, 0.8), 3))
    assert msg.pose.header.frame_id == "map" and msg.pose.pose.position.y == 2.0
    assert (msg.stamp.sec, msg.stamp.nanosec) == (1_700_000_000, 250_000_000)
    assert msg.pose.header.stamp == msg.stamp
    assert list(msg.scores) == pytest.approx([0.6, 0.8]) and msg.score == pytest.approx(0.7)
    assert msg.camera == "/cam" and msg.keyframe_id == 42
    array = markers("map", msg.stamp, [kf.pose, kf.pose], np.array([0.1, 0.9]),
                    [Place(kf, 0.7, (0.6, 0.8), 3)])
    from visualization_msgs.msg import Marker

    kinds = [(m.ns, m.type) for m in array.markers]
    assert array.markers[0].action == Marker.DELETEALL  # markers of the last query go first
    assert ("keyframes", Marker.SPHERE_LIST) in kinds and ("places", Marker.ARROW) in kinds
    spheres = array.markers[kinds.index(("keyframes", Marker.SPHERE_LIST))]
    assert len(spheres.points) == 2 and spheres.colors[1].r > spheres.colors[0].r


def test_score_colors_go_from_blue_to_red():
    c = score_colors(np.array([0.2, 0.5, 0.8]))
    assert (c[0].b, c[0].r) == pytest.approx((1.0, 0.0)) and (c[2].r, c[2].b) == (1.0, 0.0)


def test_tf2_source_looks_up_the_image_frame_at_its_stamp():
    pytest.importorskip("tf2_ros", reason="tf2_ros is not on PyPI; needs a ROS install")
    import rclpy
    from geometry_msgs.msg import TransformStamped

    from clip_perception.core.memory import PoseNotYetKnown
    from clip_perception.ros.memory import Tf2PoseSource

    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("tf2_memory_test", context=context)
    try:
        src = Tf2PoseSource(node, "map", timeout=0.01)
        for sec, x in ((10, 0.0), (12, 2.0)):
            t = TransformStamped()
            t.header.frame_id, t.child_frame_id = "map", "camera"
            t.header.stamp.sec = sec
            t.transform.translation.x = x
            t.transform.rotation.w = 1.0
            src.buffer.set_transform(t, "test")
        assert src.pose_at("camera", 11 * 10 ** 9).position == pytest.approx((1.0, 0, 0))
        with pytest.raises(PoseNotYetKnown):
            src.pose_at("camera", 13 * 10 ** 9)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
