"""Helpers for node tests in real rclpy over real DDS: the node runs in its own process.

Imported by test modules (pytest puts test/ on sys.path). Everything waits on conditions with
timeouts, never on fixed sleeps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm.xml"


def ros_env() -> dict:
    """The environment for node processes: localhost discovery, the large-SHM profile."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)  # deprecated name; avoid the warning
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    return env


def use_profile_in_this_process() -> None:
    """Must run before rclpy.init in the test process (publishers need the segment too)."""
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@contextmanager
def ros_test_node(name: str, threads: int = 2):
    """rclpy in this process on a context of its own, spun by an executor thread: the node
    tests publish, subscribe and call services with."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    use_profile_in_this_process()
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = MultiThreadedExecutor(num_threads=threads, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(5)


class RosClient:
    """THE ROS test client: a node in this process (e.g. from ``ros_test_node``) and the three
    things every node test does: call a service and wait for the answer, wait until a service
    (and the node process) is ready, and find a /diagnostics status of the node under test.

    ``node_name``: the fully qualified name of the node under test (its statuses are named
    ``<node_name>: pipeline``, ``<node_name>: camera <topic>``, ...). Test modules subclass it
    with their own publishers and subscriptions.
    """

    def __init__(self, node, node_name: str):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.node_name = node_name
        self.diagnostics = Collector()
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics, 50)

    def service(self, srv_type, name: str):
        """A client for ``name``; relative names are under the node under test."""
        return self.node.create_client(
            srv_type, name if name.startswith("/") else f"{self.node_name}/{name}")

    def wait_ready(self, ready: Callable[[], object], timeout: float = 60.0,
                   proc: Optional["NodeProcess"] = None, what="the node"):
        """Wait until ``ready()`` (e.g. ``client.service_is_ready``); fails at once, with the
        log, if ``proc`` exits meanwhile. ``what``: a name, or a callable giving the failure
        message (evaluated only on failure)."""
        def check():
            if proc is not None and proc.proc.poll() is not None:
                raise AssertionError(f"node exited with {proc.proc.returncode}:\n"
                                     f"{proc.output()}")
            return ready()
        if not wait_until(check, timeout, 0.05):
            name = what() if callable(what) else what
            log = f":\n{proc.output()}" if proc is not None else ""
            raise AssertionError(f"{name} not ready within {timeout} s{log}")

    def call(self, client, request, timeout: float = 30.0, ready_timeout: float = 30.0):
        """Wait until the service is ready, call it, wait for the response and return it."""
        self.wait_ready(client.service_is_ready, ready_timeout, what=client.srv_name)
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f"{client.srv_name} timed out after {timeout} s"
        return future.result()

    def statuses(self, predicate: Callable[[dict], object] = lambda s: True,
                 timeout: float = 10.0, while_waiting: Optional[Callable[[], object]] = None):
        """{name: DiagnosticStatus} of the node under test, from the first /diagnostics message
        received from now on whose statuses satisfy ``predicate``; None on timeout.
        ``while_waiting`` runs every ~0.1 s meanwhile (e.g. publish a frame)."""
        start = len(self.diagnostics.messages)
        prefix = self.node_name + ":"

        def check(msgs):
            for msg in msgs[start:]:
                found = {s.name: s for s in msg.status if s.name.startswith(prefix)}
                if found and predicate(found):
                    return found
            return None
        if while_waiting is None:
            return self.diagnostics.wait_for(check, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while_waiting()
            found = self.diagnostics.wait_for(check, 0.1)
            if found:
                return found
        return None

    def status(self, kind: str, predicate: Callable[[object], object] = lambda s: True,
               timeout: float = 10.0, while_waiting: Optional[Callable[[], object]] = None):
        """The node's ``<node>: <kind>`` status (e.g. 'pipeline', 'place memory') satisfying
        ``predicate``, received from now on; None on timeout."""
        name = f"{self.node_name}: {kind}"
        found = self.statuses(lambda s: name in s and predicate(s[name]), timeout, while_waiting)
        return found[name] if found else None


def status_values(status) -> dict:
    """A DiagnosticStatus's key/value pairs as a dict."""
    return {kv.key: kv.value for kv in status.values}


def param_args(params: dict) -> list[str]:
    """``-p name:=value`` arguments; values are YAML (lists as [..], empty string as "")."""
    import yaml

    args = []
    for name, value in params.items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10 ** 6).strip()
        if text.endswith("\n...") or text.endswith("..."):
            text = text.rsplit("\n", 1)[0].strip()
        if value == "":
            text = '""'
        args += ["-p", f"{name}:={text}"]
    return args


def run_node_main(params: dict, extra_ros_args: tuple = ()) -> int:
    """``clip_perception_node``'s ``main`` in this process (its own rclpy init/shutdown of the
    default context): for start-up failures, where a process start would only add its import
    time. Read what it logged with pytest's ``capfd`` (rcutils writes to the stderr fd)."""
    from clip_perception.cli.node import main

    use_profile_in_this_process()
    return main(["clip_perception_node", "--ros-args", *param_args(params), *extra_ros_args])


class NodeProcess:
    """``python -m clip_perception.cli.node --ros-args ...`` with its output in a log file."""

    def __init__(self, log_path: Path, params: dict, params_file: Optional[Path] = None,
                 extra_ros_args: tuple = ()):
        args = [sys.executable, "-m", "clip_perception.cli.node", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        args += param_args(params) + list(extra_ros_args)
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=ros_env(), cwd=str(REPO))

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGINT (what Ctrl-C and ros2 launch send), then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Collector:
    """Thread-safe list of received messages with a condition to wait on."""

    def __init__(self):
        self.messages: list = []
        self._cond = threading.Condition()

    def __call__(self, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list], object], timeout: float):
        """Wait until ``predicate(messages)`` is truthy; returns its value (None on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.messages))
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.1))

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()


def publish_until_received(send: Callable[[], int], collector: "Collector", timeout: float):
    """Call ``send()`` (publishes one frame, returns its stamp in ns) every ~0.5 s until
    ``collector`` holds a message stamped like one of those frames; that message, or None."""
    sent: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent.add(send())
        found = collector.wait_for(
            lambda msgs: next((m for m in msgs if stamp_ns(m) in sent), None), 0.5)
        if found is not None:
            return found
    return None


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# ---- images -----------------------------------------------------------------------------------
def pattern_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                    np.full_like(xx, rng.integers(0, 255))], axis=-1)
    return img.astype(np.uint8)


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10 ** 9)
    msg.header.frame_id = frame_id
    data = rgb if encoding == "rgb8" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.step = rgb.shape[1] * 3
    msg.data = data.tobytes()
    return msg


def jpeg_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str):
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10 ** 9)
    msg.header.frame_id = frame_id
    msg.format = "jpeg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg.data = buf.tobytes()
    return msg


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
