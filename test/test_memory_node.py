"""The node with memory.enabled, in its own process over real DDS: this process plays the drive
of memory_scenes (frames + nav_msgs/Odometry), then asks ~/query_places with the photo of
scene B and gets the pose where B was shown; the memory survives a restart, a node with another
model refuses it, ~/clear_memory empties it."""
from __future__ import annotations

import pytest

from memory_scenes import T0, image_times, pose_times, robot_pose, scene_at, scene_image, x_range
from node_testing import (Collector, NodeProcess, RosClient, image_msg, ros_test_node,
                          run_node_main, stamp_ns, status_values, wait_until)

rclpy = pytest.importorskip("rclpy")
# no skip for clip_perception_msgs: scripts/setup_venv.sh builds it into the venv

from clip_perception_msgs.srv import QueryPlaces  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

NODE = "/clip_perception"
CAM = "/drive_cam/image_raw"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def client():
    with ros_test_node("memory_test_client") as node:
        yield DriveClient(node)


class DriveClient(RosClient):
    def __init__(self, node):
        super().__init__(node, NODE)
        self.images = node.create_publisher(Image, CAM, RELIABLE)
        self.odom = node.create_publisher(Odometry, "/odom", RELIABLE)
        self.results = Collector()
        node.create_subscription(Classification, NODE + "/classification", self.results, 50)
        self.markers = Collector()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(MarkerArray, NODE + "/places/markers", self.markers, latched)
        self.query = self.service(QueryPlaces, "query_places")
        self.clear = self.service(Trigger, "clear_memory")

    def wait_node(self, proc: NodeProcess, timeout: float = 60) -> None:
        self.wait_ready(lambda: (self.images.get_subscription_count() > 0
                                 and self.odom.get_subscription_count() > 0
                                 and self.query.service_is_ready()
                                 and self.clear.service_is_ready()), timeout, proc)

    def odometry(self, t: float) -> Odometry:
        msg = Odometry()
        t_ns = T0 + int(round(t * 1e9))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 10 ** 9)
        msg.header.frame_id = "map"
        msg.child_frame_id = "base_link"
        (x, y, z), (qx, qy, qz, qw) = robot_pose(t)
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        p.x, p.y, p.z, q.x, q.y, q.z, q.w = x, y, z, qx, qy, qz, qw
        return msg

    def drive(self, proc: NodeProcess) -> int:
        """Poses up to each frame's stamp + 0.1 s, then the frame; waits for its result (so the
        node's newest-frame slot never drops one). Returns how many frames were processed."""
        poses = iter(pose_times())
        next_pose = next(poses)
        done = 0
        for t in image_times():
            while next_pose is not None and next_pose <= t + 0.1:
                self.odom.publish(self.odometry(next_pose))
                next_pose = next(poses, None)
            t_ns = T0 + int(round(t * 1e9))
            self.images.publish(image_msg(scene_image(scene_at(t)), t_ns, "camera_optical"))
            got = self.results.wait_for(
                lambda msgs: any(stamp_ns(m) == t_ns for m in msgs), timeout=20)
            assert got, f"no result for the frame at {t} s:\n{proc.output()}"
            done += 1
        return done

    def query_photo(self, name: str, k: int = 5, min_separation: float = 3.0):
        req = QueryPlaces.Request(k=k, min_separation=min_separation)
        req.image = image_msg(scene_image(name), 0, "")
        return self.call(self.query, req).places


def memory_params(model_id, memory_dir, cache_dir):
    return {"model": model_id, "pretrained": "", "backend": "torch",
            "engine_cache_dir": str(cache_dir), "image_topics": [CAM],
            "qos_reliability": "reliable", "labels": ["a", "b"],
            "prompt_templates": ["a photo of a {}."], "memory.enabled": True,
            "memory.uri": str(memory_dir), "memory.pose_source": "topic",
            "memory.pose_topic": "/odom", "memory.pose_type": "odometry",
            "memory.max_pose_gap": 0.5}


def stop_ok(proc: NodeProcess) -> None:
    code = proc.stop()
    assert code == 0, f"node exited with {code} on SIGINT; log:\n{proc.output()}"


def test_node_remembers_where_it_saw_the_scene(tmp_path, tiny_model_id, client, engine_cache_dir,
                                               capfd):
    from clip_perception.core.tiny_model import write_tiny_model

    memory = tmp_path / "memory"
    params = memory_params(tiny_model_id, memory, engine_cache_dir)
    proc = NodeProcess(tmp_path / "node1.log", params)
    try:
        client.wait_node(proc)
        assert client.drive(proc) == len(image_times())
        lo, hi = x_range("B")
        # keyframes are recorded on the node's memory thread: wait until the last is stored
        def b_found():
            places = client.query_photo("B")
            return places if places and places[0].score > 0.999 and \
                len([p for p in places if p.score > 0.999]) >= 2 else None
        places = wait_until(b_found, 30, 0.2)
        assert places, f"scene B not found:\n{proc.output()}"
        for p in places:  # exactly the places where B was shown match the photo
            assert (p.score > 0.999) == (lo - 1e-9 <= p.pose.pose.position.x < hi), places
        best = places[0]
        assert best.pose.header.frame_id == "map" and best.camera == CAM
        t = (best.stamp.sec * 10 ** 9 + best.stamp.nanosec - T0) / 1e9
        (x, _, _), _ = robot_pose(t)  # the pose interpolated at the frame's own stamp
        assert best.pose.pose.position.x == pytest.approx(x, abs=1e-6)
        assert best.pose.header.stamp == best.stamp and best.keyframe_id > 0
        assert len(best.scores) == 1 and best.scores[0] == pytest.approx(best.score)
        markers = client.markers.wait_for(
            lambda msgs: msgs and len(msgs[-1].markers) > 1 and msgs[-1], timeout=10)
        assert markers and markers.markers[1].ns == "keyframes" and markers.markers[1].points
        # a text query runs through the node's text tower (a random model: only shape checked)
        text = client.call(client.query, QueryPlaces.Request(texts=["a red door", "a tree"],
                                                             k=2)).places
        assert len(text) == 2 and all(len(p.scores) == 2 for p in text)
        # the recorder thread may still be storing the last frames: wait for >= 20 keyframes
        memory_status = client.status(
            "place memory", lambda st: int(status_values(st).get("stored", 0)) >= 20, 15)
        assert memory_status, "no place memory status with >= 20 keyframes on /diagnostics"
        status = status_values(memory_status)
        assert int(status["stored"]) >= 20 and int(status["not_a_keyframe"]) > 0, status
        assert status.get("no_pose", "0") == "0" and status["dropped"] == "0", status
        # a bad query gets no places and a logged reason; the node keeps serving
        bad = QueryPlaces.Request(k=1)
        bad.image = image_msg(scene_image("B"), 0, "")
        bad.image.encoding = "yuv422_bogus"
        assert client.call(client.query, bad).places == []
        assert wait_until(lambda: "~/query_places refused" in proc.output(), 10), proc.output()
        assert client.query_photo("B", k=1)[0].score > 0.999
    finally:
        stop_ok(proc)

    # restart: the same keyframes are found again
    proc = NodeProcess(tmp_path / "node2.log", params)
    try:
        client.wait_node(proc)
        again = client.query_photo("B")
        assert [p.keyframe_id for p in again] == [p.keyframe_id for p in places]
        cleared = client.call(client.clear, Trigger.Request())
        assert cleared.success and cleared.message.startswith("cleared ")
        assert int(cleared.message.split()[1]) >= 20
        assert client.query_photo("B") == []
    finally:
        stop_ok(proc)

    # another model: the node refuses the memory at start, with the reason (main in this
    # process: the two starts above are the real processes)
    other = write_tiny_model(tmp_path / "other_model", seed=1)
    capfd.readouterr()
    assert run_node_main(dict(params, model=other)) == 2
    out = capfd.readouterr().err
    assert "was built with model" in out and "cannot be compared" in out, out


def test_memory_parameters_are_validated(tmp_path, tiny_model_id):
    """The node's one validation refuses a bad memory.* value with the reason (how a bad
    parameter ends a node process, exit 2 with the reason, is test_node_ros's start-up test)."""
    from clip_perception.ros.parameters import PARAMETERS, ParameterError, validate

    values = {p.name: p.default for p in PARAMETERS}
    values.update(memory_params(tiny_model_id, tmp_path / "m", tmp_path / "c"),
                  **{"memory.pose_type": "gps"})
    with pytest.raises(ParameterError, match=r"memory.pose_type.*got 'gps'"):
        validate(values)
