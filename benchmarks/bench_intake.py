"""Executor CPU per 640x480 message at 30 Hz: what the node's intake costs, per executor setup.

    python benchmarks/bench_intake.py [--frames 300] [--rounds 2]

For each setup (MultiThreadedExecutor(3) | SingleThreadedExecutor) x (deserialized |
serialized ``raw=True`` messages) x (glibc default | ``core.allocator.keep_large_buffers``), a
fresh subscriber process receives ``--frames`` 640x480 rgb8 frames published at 30 Hz by a
second process (best effort, config/fastdds_shm.xml); its callback only keeps the message.
Printed: frames received, the subscriber's CPU per received message, and how much of it ran in
Python threads (GIL holders) vs Fast DDS's own threads. Setups are interleaved per round; the
machine is shared, so compare within a round.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))
TOPIC = "/bench_intake/image"


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name of this process (Python threads are all 'python')."""
    out: dict[str, float] = {}
    hz = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = "python" if name.startswith("python") else name
        out[key] = out.get(key, 0.0) + (int(stat[11]) + int(stat[12])) / hz
    return out


def publish(frames: int) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from node_testing import image_msg, pattern_image

    rclpy.init()
    node = rclpy.create_node("bench_intake_pub")
    pub = node.create_publisher(Image, TOPIC, QoSProfile(
        depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    msg = image_msg(pattern_image(480, 640), 0, "cam")
    while not pub.get_subscription_count():
        time.sleep(0.05)
    time.sleep(1.0)
    next_t = time.monotonic()
    for i in range(frames):
        msg.header.stamp.sec = i
        pub.publish(msg)
        next_t += 1 / 30
        time.sleep(max(0.0, next_t - time.monotonic()))


def subscribe(executor_kind: str, raw: bool, tuned: bool, frames: int) -> str:
    if tuned:
        from clip_perception.core.allocator import keep_large_buffers
        keep_large_buffers()
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_intake_sub")
    got = []
    node.create_subscription(Image, TOPIC, got.append, QoSProfile(
        depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
        callback_group=MutuallyExclusiveCallbackGroup(), raw=raw)
    node.create_timer(1.0, lambda: None, callback_group=MutuallyExclusiveCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=3) if executor_kind == "multi" \
        else SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    pub = subprocess.Popen([sys.executable, __file__, "--publish", str(frames)])
    while not got:
        time.sleep(0.001)
    r0, k0, n0 = resource.getrusage(resource.RUSAGE_SELF), thread_cpu(), len(got)
    pub.wait()
    time.sleep(0.3)
    r1, k1 = resource.getrusage(resource.RUSAGE_SELF), thread_cpu()
    n = max(len(got) - n0, 1)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    py = k1.get("python", 0.0) - k0.get("python", 0.0)
    return (f"{executor_kind:6s} {'serialized' if raw else 'deserialized':12s} "
            f"{'heap' if tuned else 'default':7s}  received {len(got)}/{frames}  "
            f"{cpu / n * 1000:6.2f} ms CPU/message, Python threads {py / n * 1000:6.2f} ms")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    p.add_argument("--subscribe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    from node_testing import use_profile_in_this_process
    use_profile_in_this_process()
    if args.publish is not None:
        publish(args.publish)
        return 0
    if args.subscribe:
        kind, raw, tuned = args.subscribe.split(",")
        print(subscribe(kind, raw == "1", tuned == "1", args.frames), flush=True)
        os._exit(0)  # skip rclpy teardown of the spinning executor
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; executor, message, "
          f"allocator")
    for r in range(args.rounds):
        for setup in ("multi,0,0", "multi,0,1", "single,0,1", "single,1,0", "single,1,1",
                      "multi,1,1"):
            out = subprocess.run([sys.executable, __file__, "--subscribe", setup, "--frames",
                                  str(args.frames)], capture_output=True, text=True)
            line = (out.stdout.strip().splitlines() or [out.stderr.strip()[-300:]])[-1]
            print(f"round {r}: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
