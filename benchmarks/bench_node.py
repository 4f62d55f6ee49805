"""Node end-to-end throughput vs the raw backend, and the age of results under overload.

    python benchmarks/bench_node.py [--backend onnxruntime] [--model local-dir:...] [--seconds 15]

1. Raw backend: encode_images on the already preprocessed frame, batch 1, in this process
   (also: preprocess + encode, what the node must do per frame at minimum).
2. Node: the node in its own process, this process publishes 640x480 rgb8 frames at
   --publish-hz (faster than inference) on one camera; node images/s = results received per
   second. The ratio node/raw is the goal (>= 0.9).
3. Age: for every result, receive time - frame stamp (both this process's clock). Bounded
   (about one inference) and not growing = no backlog; reported for the first and second half.
Run alone on the machine: the numbers are CPU-bound.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))


class RawBackend:
    """The same backend in this process, on the already preprocessed frame (batch 1)."""

    def __init__(self, model_id: str, backend: str, frame: np.ndarray):
        from clip_perception.core.backends import create_image_encoder
        from clip_perception.core.model import load_clip
        from clip_perception.core.preprocess import Preprocessor

        clip = load_clip(model_id)
        self.encoder = create_image_encoder(clip, backend=backend, max_batch=8)
        self.pre = Preprocessor(clip.preprocess)
        self.frame = frame
        self.batch = self.pre([frame])
        for _ in range(3):
            self.encoder.encode_images(self.batch)

    def rate(self, seconds: float, with_preprocess: bool = False) -> float:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.encoder.encode_images(self.pre([self.frame]) if with_preprocess else self.batch)
            n += 1
        return n / (time.perf_counter() - start)


def run(model_id: str, backend: str, frame: np.ndarray, rounds: int, seconds: float,
        publish_hz: float, tmp: Path) -> dict:
    """Alternate raw-backend and node phases so both see the same machine load."""
    from node_testing import NodeProcess, image_msg, stamp_ns, use_profile_in_this_process
    use_profile_in_this_process()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification

    raw = RawBackend(model_id, backend, frame)  # exports/caches the ONNX file for the node
    topic = "/bench/image_raw"
    proc = NodeProcess(tmp / "node.log", dict(model=model_id, pretrained="", backend=backend,
                                              image_topics=[topic], labels=["a", "b", "c"],
                                              top_k=3))
    rclpy.init()
    node = rclpy.create_node("bench_node_client")
    pub = node.create_publisher(Image, topic, QoSProfile(
        depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    results: list[tuple[int, int]] = []  # (receive time ns, frame stamp ns)
    node.create_subscription(
        Classification, "/clip_perception/classification",
        lambda m: results.append((time.time_ns(), stamp_ns(m))), 100)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()

    def publish_for(duration: float) -> None:
        period, end = 1.0 / publish_hz, time.monotonic() + duration
        next_t = time.monotonic()
        while time.monotonic() < end:
            pub.publish(image_msg(frame, time.time_ns(), "bench"))
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    rows = []
    try:
        deadline = time.monotonic() + 300
        while pub.get_subscription_count() == 0 or \
                node.count_publishers("/clip_perception/classification") == 0:
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node did not come up:\n{proc.output()}")
            time.sleep(0.1)
        publish_for(3.0)  # warm-up (first inferences, thread pools)
        ages: list[float] = []
        for _ in range(rounds):
            time.sleep(0.5)  # let the node go idle before measuring the raw backend
            raw_rate = raw.rate(seconds)
            publish_for(1.0)  # the node's pipeline fills before counting
            t0 = time.time_ns()
            publish_for(seconds)
            t1 = time.time_ns()
            window = [(r, s) for r, s in results if t0 <= r <= t1]
            ages += [(r - s) / 1e6 for r, s in window]
            rows.append((raw_rate, len(window) / ((t1 - t0) / 1e9), [(r - s) / 1e6 for r, s in window]))
        raw_pre = raw.rate(seconds, with_preprocess=True)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        proc.stop()
    return {"rows": rows, "backend": raw.encoder.describe(), "raw_pre": raw_pre}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model id (default: random ViT-B-32 written to a temp dir)")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0, help="per phase and round")
    p.add_argument("--publish-hz", type=float, default=30.0)
    args = p.parse_args(argv)
    from node_testing import pattern_image
    from clip_perception.core.tiny_model import write_random_vit_b_32

    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        tmp = Path(tmp)
        model_id = args.model or write_random_vit_b_32(tmp / "vit_b_32")
        out = run(model_id, args.backend, pattern_image(480, 640), args.rounds, args.seconds,
                  args.publish_hz, tmp)
    print(f"backend {out['backend']}; 640x480 rgb8 frames published at {args.publish_hz:g} Hz "
          f"(best effort) to one camera; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("round  raw encode img/s  node img/s  ratio  age ms median/p95/max")
    for i, (raw_rate, node_rate, ages) in enumerate(out["rows"]):
        print(f"{i:5d}  {raw_rate:16.2f}  {node_rate:10.2f}  {node_rate / raw_rate:5.3f}  "
              f"{statistics.median(ages):.0f}/{np.percentile(ages, 95):.0f}/{max(ages):.0f}")
    ratios = [n / r for r, n, _ in out["rows"]]
    all_ages = [a for _, _, ages in out["rows"] for a in ages]
    print(f"median ratio node/raw: {statistics.median(ratios):.3f}")
    print(f"raw preprocess+encode (last): {out['raw_pre']:.2f} img/s")
    print(f"age over all rounds ms: median {statistics.median(all_ages):.0f}, p95 "
          f"{np.percentile(all_ages, 95):.0f}, max {max(all_ages):.0f}; median per round "
          f"{[round(statistics.median(a)) for _, _, a in out['rows']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
