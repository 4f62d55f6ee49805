"""The node in this process (so a test can hold or instrument its parts), over real rclpy and
DDS: frames, /diagnostics, results and ~/change_state go through topics and services exactly as
from another process. Imported by test modules (pytest puts test/ on sys.path)."""
from __future__ import annotations

import itertools
import threading

from node_testing import Collector, RosClient, image_msg, pattern_image, \
    publish_until_received, use_profile_in_this_process

_stamps = itertools.count(1_900_000_000 * 10 ** 9, 1_000_000)


class HeldEncoder:
    """The node's real encoder, except while ``hold`` (blocks in encode_images until released)
    or ``fail`` (raises) is set."""

    def __init__(self, inner):
        self._inner = inner
        self.hold, self.fail = threading.Event(), threading.Event()
        self.release, self.entered, self.returned = (threading.Event(), threading.Event(),
                                                     threading.Event())

    def encode_images(self, batch):
        if self.fail.is_set():
            raise RuntimeError("simulated encoder fault")
        if self.hold.is_set():
            self.entered.set()
            self.release.wait(60)
            out = self._inner.encode_images(batch)
            self.returned.set()
            return out
        return self._inner.encode_images(batch)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Harness:
    """A ClipPerceptionNode (autostart off) and a client node on one executor in this process."""

    def __init__(self, tiny_model_id, namespace: str, **params):
        import rclpy
        from lifecycle_msgs.srv import ChangeState
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification

        from clip_perception.ros.node import ClipPerceptionNode

        use_profile_in_this_process()
        self.name = f"{namespace}/clip_perception"
        self.camera = f"{namespace}/image_raw"
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        values = dict(model=tiny_model_id, backend="torch", autostart=False,
                      image_topics=[self.camera], labels=["cup", "apple"],
                      prompt_templates=["a photo of a {}."], stall_timeout=1.0)
        values.update(params)
        self.node = ClipPerceptionNode(
            namespace=namespace, context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.client = rclpy.create_node("harness_client", namespace=namespace,
                                        context=self.context)
        self.pub = self.client.create_publisher(Image, self.camera, QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.ros = RosClient(self.client, self.name)
        self.results, self.diagnostics = Collector(), self.ros.diagnostics
        self.client.create_subscription(Classification, self.name + "/classification",
                                        self.results, 50)
        self.change = self.ros.service(ChangeState, "change_state")
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.destroyed = False

    def transition(self, transition_id: int, timeout: float = 60.0) -> bool:
        """Through the standard ~/change_state service, as a lifecycle manager does."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        self.ros.wait_ready(self.change.service_is_ready, 30,
                            what=lambda: f"{self.name}/change_state (servers in the graph: "
                                         f"{self.service_servers('change_state')})")
        return self.ros.call(self.change, ChangeState.Request(
            transition=Transition(id=transition_id)), timeout).success

    def service_servers(self, service: str) -> dict:
        """Which nodes the graph says serve ``service`` of the node: its request readers and
        response writers (rmw calls a service ready only when both sides agree), by node and
        DDS participant (the first 12 bytes of an endpoint gid)."""
        base = f"{self.name}/{service}"

        def names(infos):
            return [f"{i.node_namespace}/{i.node_name}@{bytes(i.endpoint_gid[:12]).hex()}"
                    for i in infos]
        return {"request readers": names(self.client.get_subscriptions_info_by_topic(
                    f"rq{base}Request", no_mangle=True)),
                "response writers": names(self.client.get_publishers_info_by_topic(
                    f"rr{base}Reply", no_mangle=True))}

    def node_names(self) -> set[str]:
        return {f"{ns.rstrip('/')}/{n}" for n, ns in self.client.get_node_names_and_namespaces()}

    def send(self, frame_id: str = "live") -> int:
        stamp = next(_stamps)
        self.pub.publish(image_msg(pattern_image(48, 64), stamp, frame_id))
        return stamp

    def result_for_new_frames(self, timeout: float = 20.0):
        return publish_until_received(self.send, self.results, timeout)

    def pipeline_status_while_sending(self, predicate, timeout: float = 15.0):
        """Keep frames coming (a camera at ~10 Hz) until a pipeline status satisfies predicate."""
        return self.ros.status("pipeline", predicate, timeout, while_waiting=self.send)

    def destroy_node(self):
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.destroyed = True

    def close(self):
        import rclpy

        self.executor.shutdown()
        if not self.destroyed:
            self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)
