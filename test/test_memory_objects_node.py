"""The node with memory.enabled and labelled boxes, over real rclpy and DDS: a robot drives past
two objects at known places in map (object_scenes), publishing its camera pose
(geometry_msgs/PoseStamped), frames, aligned depth, camera_info and a detector's boxes for both;
~/query_objects with each object's own crop as the image query returns that object first, within
5 cm of where it is, with its observations merged; texts give one cosine each; ~/objects/markers
shows a sphere per object; ~/clear_memory empties the objects too."""
import numpy as np
import pytest

from detection_testing import camera_info_msg, depth_msg, detection_array
from node_harness import Harness
from node_testing import Collector, image_msg, stamp_ns, wait_until
from object_scenes import (CX, CY, FX, FY, H, OBJECTS, T0, W, camera_pose, frame_times,
                           pose_times, render, texture)

pytest.importorskip("rclpy")
NS = "/objmem"
CAM, BOXES = f"{NS}/cam/image_raw", f"{NS}/cam/boxes"
DEPTH, INFO, POSE = f"{NS}/cam/depth", f"{NS}/cam/camera_info", f"{NS}/camera_pose"
K = (FX, FY, CX, CY)


def pose_msg(t: float):
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(T0 + int(round(t * 1e9)), 10 ** 9)
    msg.header.frame_id = "map"
    (x, y, z), (qx, qy, qz, qw) = camera_pose(t)
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = x, y, z, qx, qy, qz, qw
    return msg


@pytest.fixture(scope="module")
def drive(tiny_model_id, tmp_path_factory):
    from clip_perception_msgs.srv import QueryObjects
    from geometry_msgs.msg import PoseStamped
    from lifecycle_msgs.msg import Transition
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Detection2DArray
    from visualization_msgs.msg import MarkerArray

    h = Harness(tiny_model_id, NS, image_topics=[CAM], detection_topics=[BOXES],
                depth_topics=[DEPTH], camera_info_topics=[INFO], crop_padding=0.0,
                qos_reliability="reliable", qos_depth=20, detection_timeout=2.0,
                **{"memory.enabled": True, "memory.uri": str(tmp_path_factory.mktemp("mem")),
                   "memory.pose_source": "topic", "memory.pose_topic": POSE,
                   "memory.pose_type": "pose_stamped", "memory.max_pose_gap": 0.5})
    try:
        assert h.transition(Transition.TRANSITION_CONFIGURE)
        assert h.transition(Transition.TRANSITION_ACTIVATE)
        c, qos = h.client, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {"image": c.create_publisher(Image, CAM, qos),
                "boxes": c.create_publisher(Detection2DArray, BOXES, qos),
                "depth": c.create_publisher(Image, DEPTH, qos),
                "info": c.create_publisher(CameraInfo, INFO, qos),
                "pose": c.create_publisher(PoseStamped, POSE, qos)}
        h.detections = Collector()
        c.create_subscription(Detection2DArray, f"{h.name}/detections", h.detections, 50)
        h.markers = Collector()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        c.create_subscription(MarkerArray, f"{h.name}/objects/markers", h.markers, latched)
        h.query = c.create_client(QueryObjects, f"{h.name}/query_objects")
        h.clear = c.create_client(Trigger, f"{h.name}/clear_memory")
        assert wait_until(lambda: all(p.get_subscription_count() for p in pubs.values())
                          and h.query.service_is_ready(), 30)
        poses = iter(pose_times())
        next_pose = next(poses)
        for t in frame_times():
            while next_pose is not None and next_pose <= t + 0.1:
                pubs["pose"].publish(pose_msg(next_pose))
                next_pose = next(poses, None)
            stamp = T0 + int(round(t * 1e9))
            rgb, depth, boxes = render(t)
            names = sorted(boxes)
            for _ in range(3):  # camera_info is not latched: until the node has seen it
                pubs["info"].publish(camera_info_msg(K, W, H, stamp, "cam_optical"))
                pubs["depth"].publish(depth_msg(depth, stamp, "cam_optical"))
                pubs["image"].publish(image_msg(rgb, stamp, "cam_optical"))
                pubs["boxes"].publish(detection_array(stamp, [boxes[n] for n in names],
                                                      "cam_optical"))
                if h.detections.wait_for(lambda msgs: any(stamp_ns(m) == stamp for m in msgs),
                                         10):
                    break
            else:
                raise AssertionError(f"no ~/detections for the frame at {t} s")
        yield h
    finally:
        h.close()


def call(client, request, timeout=30.0):
    future = client.call_async(request)
    assert wait_until(future.done, timeout), "service call timed out"
    return future.result()


def query_crop(h, name, k=2):
    from clip_perception_msgs.srv import QueryObjects

    req = QueryObjects.Request(k=k)
    req.image = image_msg(texture(name, 64), 0, "")
    return call(h.query, req).objects


def test_each_objects_own_crop_finds_it_where_it_is(drive):
    h = drive
    n_frames = len(frame_times())
    for name, where in OBJECTS.items():
        # recorded on the memory thread: wait until every box of the drive is merged in
        def merged():
            objects = query_crop(h, name)
            return objects if objects and objects[0].observations == n_frames else None
        objects = wait_until(merged, 30, 0.2)
        assert objects, f"{name}: not merged: {query_crop(h, name)}"
        best = objects[0]
        assert best.has_position and best.position.header.frame_id == "map"
        p = best.position.point
        assert np.linalg.norm([p.x - where[0], p.y - where[1], p.z - where[2]]) < 0.05, (name, p)
        assert best.observations > 1 and best.score > objects[1].score
        other = objects[1].position.point  # the other object is second, at its own place
        assert np.linalg.norm([other.x - where[0], other.y - where[1]]) > 1.0
        # seen best from the camera pose of its largest box: the last frame of the drive
        (x, y, _), _ = camera_pose(frame_times()[-1])
        assert best.seen_from.header.frame_id == "map"
        assert best.seen_from.pose.position.x == pytest.approx(x, abs=1e-3)
        assert best.seen_from.pose.position.y == pytest.approx(y, abs=1e-3)
        assert stamp_ns(best.seen_from) == T0 + int(round(frame_times()[-1] * 1e9))
        assert (best.last_seen.sec, best.first_seen.sec) == (
            (T0 + int(round(frame_times()[-1] * 1e9))) // 10 ** 9, T0 // 10 ** 9)
        assert len(best.scores) == 1 and best.scores[0] == pytest.approx(best.score)
    markers = h.markers.wait_for(lambda msgs: msgs and len(msgs[-1].markers) >= 3 and msgs[-1],
                                 10)
    assert markers, "no ~/objects/markers"
    spheres = [m for m in markers.markers if m.ns == "objects"]
    assert len(spheres) == 2 and len({(m.color.r, m.color.b) for m in spheres}) == 2


def test_texts_get_one_cosine_each_and_clear_empties_the_objects(drive):
    from clip_perception_msgs.srv import QueryObjects
    from std_srvs.srv import Trigger

    h = drive
    got = call(h.query, QueryObjects.Request(texts=["a red door", "a chair"], k=5)).objects
    assert len(got) == 2 and all(len(o.scores) == 2 for o in got)
    assert got[0].score == pytest.approx(np.mean(got[0].scores), abs=1e-6)
    assert call(h.query, QueryObjects.Request(k=1)).objects == []  # no query: refused
    cleared = call(h.clear, Trigger.Request())
    assert cleared.success and cleared.message.endswith(" 2 objects"), cleared.message
    assert query_crop(h, "A") == []
