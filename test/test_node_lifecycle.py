"""The managed node in its own process, driven through the standard lifecycle services
(~/change_state, ~/get_state) from this process, with ~/label_info, ~/debug_image and /rosout
received here: what a Nav2-style lifecycle manager and an RViz user see.

The process is started as ``launch_ros`` starts it, with ``-r __node:=NAME`` (which renames
every node of a process) and ``-r __ns:=...``, plus a camera topic remapping."""
from __future__ import annotations

import itertools
import time

import pytest

from node_testing import (Collector, NodeProcess, RosClient, image_msg, pattern_image,
                          publish_until_received, ros_test_node, stamp_ns, status_values,
                          use_profile_in_this_process, wait_until)

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not installed")
vision = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")
if not hasattr(vision, "LabelInfo"):
    pytest.fail("vision_msgs in this venv has no LabelInfo: re-run scripts/setup_venv.sh")

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification, LabelInfo  # noqa: E402

NODE_NAME = "lc_node"  # given by -r __node:=, as launch_ros's Node(name=...) does
NODE = f"/lifecycle_test/{NODE_NAME}"
CAM = "/lifecycle_test/image_raw"
CAM_PARAM = "/lifecycle_test/camera_in"  # the node's image_topics; remapped to CAM
LABELS = ["cup", "apple", "pear"]
_stamps = itertools.count(1_800_000_000 * 10 ** 9, 1_000_000)


class LifecycleClient(RosClient):
    def __init__(self, node):
        super().__init__(node, NODE)
        self.pub = node.create_publisher(Image, CAM, QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.results = Collector()
        self.label_info, self.debug, self.rosout = Collector(), Collector(), Collector()
        node.create_subscription(Classification, NODE + "/classification", self.results, 50)
        node.create_subscription(Log, "/rosout", self.rosout, 1000)
        self.change = self.service(ChangeState, "change_state")
        self.get = self.service(GetState, "get_state")
        self.set_params = self.service(SetParameters, "set_parameters")
        self._debug_sub = None

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change, ChangeState.Request(
            transition=Transition(id=transition_id)), timeout=60).success

    def logged(self, text: str, timeout: float = 10.0):
        """A /rosout line of the node (logger ``lifecycle_test.lc_node``) containing text."""
        return self.rosout.wait_for(lambda msgs: next(
            (m for m in msgs if m.name.endswith(NODE_NAME) and text in m.msg), None), timeout)

    def node_names(self) -> list[str]:
        return sorted(f"{ns.rstrip('/')}/{n}"
                      for n, ns in self.node.get_node_names_and_namespaces()
                      if ns.startswith("/lifecycle_test"))

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def subscribe_label_info(self):
        """A late subscriber, as a tool started after the node: transient local delivers."""
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        return self.node.create_subscription(LabelInfo, NODE + "/label_info",
                                             self.label_info, qos)

    def subscribe_debug(self):
        self._debug_sub = self.node.create_subscription(Image, NODE + "/debug_image",
                                                        self.debug, 5)

    def frames_until(self, collector: Collector, timeout: float = 20.0, rgb=None):
        """Publish frames until ``collector`` gets a message with one of their stamps."""
        rgb = pattern_image(48, 64) if rgb is None else rgb

        def send() -> int:
            stamp = next(_stamps)
            self.pub.publish(image_msg(rgb, stamp, "lc_cam"))
            return stamp
        return publish_until_received(send, collector, timeout)

    def pipeline_status(self, predicate, timeout: float = 10.0):
        return self.status("pipeline", predicate, timeout)


values_of = status_values


@pytest.fixture(scope="module")
def client():
    with ros_test_node("lifecycle_test_client") as node:
        yield LifecycleClient(node)


@pytest.fixture(scope="module")
def managed(tiny_model_id, tmp_path_factory, client):
    """autostart:=false, as under a lifecycle manager."""
    log = tmp_path_factory.mktemp("lifecycle_log") / "node.log"
    proc = NodeProcess(log, dict(
        model=tiny_model_id, backend="torch", autostart=False, image_topics=[CAM_PARAM],
        labels=LABELS, prompt_templates=["a photo of a {}."], score_threshold=0.0),
        extra_ros_args=("-r", f"__node:={NODE_NAME}", "-r", "__ns:=/lifecycle_test",
                        "-r", f"{CAM_PARAM}:={CAM}"))
    try:
        client.wait_ready(client.get.service_is_ready, 60, proc)
        yield proc
    finally:
        code = proc.stop()
        print(proc.output())
        assert code == 0, f"node exited with {code} on SIGINT:\n{proc.output()}"


def test_starts_unconfigured_without_loading_or_subscribing(managed, client):
    assert client.state() == "unconfigured"
    status = client.pipeline_status(lambda s: True)
    assert status is not None and status.message.startswith("unconfigured"), status
    assert client.pub.get_subscription_count() == 0
    assert client.node.count_publishers(NODE + "/classification") == 0
    assert "model local-dir:" not in managed.output()  # nothing loaded yet


def test_configure_publishes_label_info_and_stays_inactive(managed, client):
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == "inactive"
    assert "configured: model local-dir:" in managed.output()
    client.subscribe_label_info()
    info = client.label_info.wait_for(lambda msgs: msgs[-1] if msgs else None, 10)
    assert info is not None, "no ~/label_info for a late transient-local subscriber"
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(LABELS))
    assert info.threshold == pytest.approx(0.0)
    # inactive: no camera subscription, so frames are not even received
    assert client.pub.get_subscription_count() == 0
    assert client.frames_until(client.results, timeout=2.0) is None


def test_activate_serves_results_and_debug_image_only_while_watched(managed, client):
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == "active"
    out = client.frames_until(client.results)
    assert out is not None and sorted(r.class_id for r in out.results) == sorted(LABELS)
    status = client.pipeline_status(lambda s: values_of(s).get("lifecycle state") == "active")
    assert status is not None and values_of(status)["debug images"] == "0", \
        "debug images were drawn with nobody subscribed"
    client.subscribe_debug()
    rgb = pattern_image(120, 160, seed=3)
    debug = client.frames_until(client.debug, rgb=rgb)
    assert debug is not None, "no ~/debug_image while subscribed"
    assert (debug.encoding, debug.height, debug.width) == ("rgb8", 120, 160)
    assert debug.header.frame_id == "lc_cam" and stamp_ns(debug) > 0
    drawn = bytes(debug.data) != rgb.tobytes()
    assert drawn, "the debug image is the plain frame: nothing was drawn"


def test_label_change_sends_new_label_info(managed, client):
    new = ["dog", "cat"]
    request = SetParameters.Request(parameters=[
        ParameterMsg(name="labels", value=ParameterValue(
            type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=new)),
        ParameterMsg(name="score_threshold", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.4))])
    results = client.call(client.set_params, request).results
    assert all(r.successful for r in results), [r.reason for r in results]
    info = client.label_info.wait_for(
        lambda msgs: next((m for m in msgs if m.threshold > 0.3), None), 20)
    assert info is not None, "no ~/label_info after the label change"
    assert [(c.class_id, c.class_name) for c in info.class_map] == [
        (0, "dog"), (1, "cat"), (65535, "unknown")]
    assert info.threshold == pytest.approx(0.4)


def test_every_node_of_the_process_has_its_own_name(managed, client):
    """Under -r __node:=NAME the camera intake's helper node keeps a name of its own (NAME +
    '_intake'), and the camera remapping given to the process applies to its subscription."""
    assert wait_until(lambda: f"{NODE}_intake" in client.node_names(), 10), client.node_names()
    assert client.node_names() == [NODE, f"{NODE}_intake"]
    assert client.node.count_subscribers(CAM) == 1 and client.node.count_subscribers(
        CAM_PARAM) == 0
    assert "share an exact name" not in managed.output()
    assert "already registered" not in managed.output(), managed.output()


def test_deactivate_stops_results_and_activate_resumes(managed, client):
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == "inactive"
    assert wait_until(lambda: client.pub.get_subscription_count() == 0, 10)
    assert client.frames_until(client.results, timeout=2.0) is None
    assert client.node.count_publishers(NODE + "/classification") == 1  # kept while inactive
    # logged after the intake's helper node was destroyed: the node's /rosout publisher lives on
    assert client.logged("deactivated: intake and publishing stopped") is not None, \
        [m.msg for m in client.rosout.messages]
    assert client.node_names() == [NODE]
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.frames_until(client.results) is not None, "no results after re-activation"
    assert client.logged(f"active: listening on {CAM} (Image)") is not None


def test_cleanup_releases_and_configure_again_works(managed, client):
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP)
    assert client.state() == "unconfigured"
    assert wait_until(lambda: client.node.count_publishers(NODE + "/classification") == 0, 10)
    assert "cleaned up: model, engines and outputs released" in managed.output()
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.frames_until(client.results) is not None
    out = managed.output()
    assert "Traceback" not in out and "publishing failed" not in out, out


def test_shutdown_transition_finalizes(managed, client):
    assert client.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert client.state() == "finalized"
    assert wait_until(lambda: client.pub.get_subscription_count() == 0, 10)


def test_configure_failure_returns_failure_with_the_reason(tmp_path):
    """A model that cannot load: configure fails, the node stays up and unconfigured."""
    proc = NodeProcess(tmp_path / "fail.log", dict(
        model="local-dir:/nonexistent/model", autostart=False,
        image_topics=["/lifecycle_fail/image"]), extra_ros_args=("-r", "__ns:=/lifecycle_fail"))
    try:
        with ros_test_node("lifecycle_fail_client") as node:
            _configure_fails(node, proc)
    finally:
        code = proc.stop()
    assert code == 0, proc.output()


def _configure_fails(node, proc):
    """configure over ~/change_state returns failure; the node stays up, unconfigured."""
    client = RosClient(node, "/lifecycle_fail/clip_perception")
    change, get = client.service(ChangeState, "change_state"), client.service(GetState,
                                                                              "get_state")
    client.wait_ready(change.service_is_ready, 60, proc)
    assert client.call(change, ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_CONFIGURE)), timeout=60).success is False
    state = client.call(get, GetState.Request(), timeout=10).current_state
    assert state.id == State.PRIMARY_STATE_UNCONFIGURED
    assert wait_until(lambda: "configure failed: model folder not found: /nonexistent/model"
                      in proc.output(), 10), proc.output()
    assert proc.proc.poll() is None, "the node exited instead of waiting unconfigured"


@pytest.mark.parametrize("moment", ["configuring", "streaming and rebuilding labels"])
def test_sigint_exits_cleanly(tmp_path, tiny_model_id, moment):
    """Ctrl-C / ros2 launch's SIGINT while the engines are built at configure (int8 export +
    quantisation), or while frames stream and a label-set build runs: exit 0, no traceback, no
    'publishing failed', and no partial files left in the engine cache."""
    use_profile_in_this_process()
    cache = tmp_path / "engine_cache"
    topic = "/sigint_test/image_raw"
    # An int8 build is what is in flight while configuring; streaming needs a node that serves,
    # and an explicit int8 may be refused on the tiny random model (top-1 rule), so fp32 there.
    precision = "int8" if moment == "configuring" else "fp32"
    proc = NodeProcess(tmp_path / "node.log", dict(
        model=tiny_model_id, backend="onnxruntime", precision=precision,
        engine_cache_dir=str(cache), image_topics=[topic], labels=["cup", "apple"]),
        extra_ros_args=("-r", "__ns:=/sigint_test"))
    with ros_test_node("sigint_client") as node:
        pub = node.create_publisher(Image, topic, 5)
        set_params = node.create_client(SetParameters,
                                        "/sigint_test/clip_perception/set_parameters")
        if moment == "configuring":
            assert wait_until(lambda: "building onnxruntime-int8" in proc.output()
                              or proc.proc.poll() is not None, 60, 0.01), proc.output()
        else:
            assert wait_until(lambda: "active: listening on" in proc.output()
                              or proc.proc.poll() is not None, 60, 0.05), proc.output()
            assert proc.proc.poll() is None, proc.output()
            assert wait_until(set_params.service_is_ready, 30, 0.05), proc.output()
            for i in range(20):
                pub.publish(image_msg(pattern_image(48, 64), next(_stamps), "sig"))
                time.sleep(0.02)
            set_params.call_async(SetParameters.Request(parameters=[ParameterMsg(
                name="labels", value=ParameterValue(
                    type=ParameterType.PARAMETER_STRING_ARRAY,
                    string_array_value=[f"label {i}" for i in range(300)]))]))
            assert wait_until(lambda: "in the background" in proc.output(), 20, 0.01)
            for i in range(5):
                pub.publish(image_msg(pattern_image(48, 64), next(_stamps), "sig"))
        code = proc.stop(timeout=30)
    out = proc.output()
    assert code == 0, out
    assert "Traceback" not in out and "publishing failed" not in out, out
    leftovers = [p.name for p in cache.rglob("*") if p.suffix in (".partial", ".tmp")]
    assert not leftovers, leftovers
