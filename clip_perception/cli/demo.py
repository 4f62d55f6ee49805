"""``demo``: play frames to a camera topic and print what clip_perception publishes.

One command for a newcomer (starts the node too):
    demo --images ~/pictures --labels cup apple "a person" --landmarks "a red door"
    demo --video walk.mp4 --model ViT-B-32 --pretrained datacomp_xl_s13b_b90k
    demo --bag ~/bags/teleop --bag-topic /camera/image_raw/compressed
    demo --images ~/pictures --tiny-model      # offline: random tiny CLIP, shows the plumbing
With --no-node it only publishes and prints (a node must already run on --topic).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def package_file(relative: str) -> Path:
    """A file shipped in the package's share folder (installed) or the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        candidate = Path(get_package_share_directory("clip_perception")) / relative
        if candidate.exists():
            return candidate
    except Exception:  # not installed as a ROS package: run from the source tree
        pass
    return Path(__file__).resolve().parents[2] / relative


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images (played in name order)")
    src.add_argument("--video", help="video file")
    src.add_argument("--bag", help="rosbag2 folder or ROS 1 .bag")
    p.add_argument("--bag-topic", help="image topic in the bag (default: its only one)")
    p.add_argument("--topic", default="/demo/image_raw", help="camera topic to publish on")
    p.add_argument("--rate", type=float, default=2.0, help="frames per second to publish")
    p.add_argument("--loop", action="store_true", help="replay the source until Ctrl-C")
    p.add_argument("--no-node", action="store_true",
                   help="do not start the node (one is already running)")
    p.add_argument("--node-name", default="clip_perception")
    node = p.add_argument_group("node settings (when the demo starts the node)")
    node.add_argument("--model", default="ViT-B-32")
    node.add_argument("--pretrained", default="",
                      help="pretrained tag (default: the model's own, as the node's)")
    node.add_argument("--tiny-model", action="store_true",
                      help="write and use a random tiny CLIP (offline; scores are meaningless)")
    node.add_argument("--backend", default="auto")
    node.add_argument("--labels", nargs="+", default=["person", "chair", "door", "cup"])
    node.add_argument("--landmarks", nargs="*", default=[])
    node.add_argument("--top-k", type=int, default=3)
    node.add_argument("--params-file", help="params YAML for the node (flags above override)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the node to come up (model loading)")
    return p


def _node_command(args, model: str, pretrained: str, engine_cache_dir: str = "") -> list[str]:
    from ..ros.node import NODE_NAME
    import yaml

    def p(name, value):
        text = '""' if value == "" else yaml.safe_dump(value, default_flow_style=True,
                                                       width=10 ** 6).strip()
        return ["-p", f"{name}:={text.removesuffix('...').strip()}"]

    cmd = [sys.executable, "-m", "clip_perception.cli.node", "--ros-args"]
    if args.node_name != NODE_NAME:
        cmd += ["-r", f"__node:={args.node_name}"]
    if args.params_file:
        cmd += ["--params-file", args.params_file]
    for name, value in (("model", model), ("pretrained", pretrained),
                        ("backend", args.backend), ("image_topics", [args.topic]),
                        ("labels", args.labels), ("top_k", args.top_k)):
        cmd += p(name, value)
    if args.landmarks:
        cmd += p("landmarks", args.landmarks)
    if engine_cache_dir:
        cmd += p("engine_cache_dir", engine_cache_dir)
    return cmd


def _format(msg, width: int = 3) -> str:
    return ", ".join(f"{r.class_id} {r.score:.2f}" for r in msg.results[:width])


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..core.frame_sources import FrameSourceError, open_frames

    try:  # open early so a wrong path fails before anything starts
        frames = open_frames(args.images, args.video, args.bag, args.bag_topic)
        first = next(frames)
    except (FrameSourceError, StopIteration) as exc:
        print(f"demo: {exc or 'source has no frames'}", file=sys.stderr)
        return 2

    # The sender's shared-memory segment decides whether big best-effort frames arrive.
    profile = str(package_file("config/fastdds_shm.xml"))
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", profile)

    node_proc = None
    tmp = None
    if not args.no_node:
        model, pretrained, cache = args.model, args.pretrained, ""
        if args.tiny_model:
            from ..core.tiny_model import write_tiny_model

            tmp = tempfile.TemporaryDirectory(prefix="clip_perception_demo_")
            model, pretrained = write_tiny_model(tmp.name), ""
            # A throw-away model's exported ONNX towers must not pile up in ~/.cache.
            cache = os.path.join(tmp.name, "engine_cache")
        node_proc = subprocess.Popen(_node_command(args, model, pretrained, cache),
                                     env=dict(os.environ))
    try:
        return _play(args, first, frames, node_proc)
    finally:
        if node_proc is not None and node_proc.poll() is None:
            node_proc.send_signal(2)  # SIGINT: the node shuts down cleanly
            try:
                node_proc.wait(15)
            except subprocess.TimeoutExpired:
                node_proc.kill()
        if tmp is not None:
            tmp.cleanup()


def _play(args, first, frames, node_proc) -> int:
    import itertools

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification

    rclpy.init()
    node = rclpy.create_node("clip_perception_demo")
    pub = node.create_publisher(Image, args.topic,
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    names: dict[int, str] = {}
    lock = threading.Lock()

    def stamp_key(msg) -> int:
        return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec

    def on_classification(msg):
        with lock:
            name = names.get(stamp_key(msg), "?")
        print(f"{name:>28}: {_format(msg, args.top_k)}", flush=True)

    def on_landmarks(msg):  # published right after the frame's classification
        with lock:
            name = names.get(stamp_key(msg), "?")
        print(f"{name:>28}  landmarks (cosine): {_format(msg, len(msg.results))}", flush=True)

    base = f"/{args.node_name}"
    node.create_subscription(Classification, base + "/classification", on_classification, 10)
    node.create_subscription(Classification, base + "/landmarks", on_landmarks, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        print(f"demo: waiting for {base} to subscribe to {args.topic} ...", flush=True)
        deadline = time.monotonic() + args.timeout
        # ready = the node subscribes to our topic and its results publisher is discovered
        while (pub.get_subscription_count() == 0
               or node.count_publishers(base + "/classification") == 0):
            if node_proc is not None and node_proc.poll() is not None:
                print(f"demo: the node exited with code {node_proc.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"demo: nothing subscribed to {args.topic} within {args.timeout:.0f} s",
                      file=sys.stderr)
                return 1
            time.sleep(0.1)
        source = itertools.chain([first], frames)
        period = 1.0 / args.rate if args.rate > 0 else 0.0
        sent = 0
        while True:
            for rgb, name in source:
                msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                            step=rgb.shape[1] * 3)
                msg.header.stamp = node.get_clock().now().to_msg()
                msg.header.frame_id = "demo_camera"
                msg.data = rgb.tobytes()
                with lock:
                    names[stamp_key(msg)] = name
                pub.publish(msg)
                sent += 1
                time.sleep(period)
            if not args.loop:
                break
            source = open_again(args)
        time.sleep(2.0)  # the last results are still on their way
        print(f"demo: published {sent} frames", flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def open_again(args):
    from ..core.frame_sources import open_frames

    return open_frames(args.images, args.video, args.bag, args.bag_topic)


if __name__ == "__main__":
    sys.exit(main())
