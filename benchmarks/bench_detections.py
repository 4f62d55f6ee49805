"""Boxes per second through the node, and the cost of a box against a whole frame.

    python benchmarks/bench_detections.py [--backend auto] [--precision auto]
        [--boxes 1 4 16] [--seconds 6] [--rounds 2] [--json PATH] [--workdir DIR]

The node runs in its own process with its default parameters (``backend``/``precision``
``auto``, ``max_batch`` 8) on a random ViT-B-32 and one 640x480 camera with a detection
topic. This process is the camera and the detector: it publishes a frame and, with the same
stamp, a Detection2DArray of k boxes of different sizes on a grid (test/fake_detector.py's
layout), and the next pair as soon as the node has answered the previous one (closed loop, one
frame in flight: the DDS and scheduling overhead per frame is the same for every k and cancels
in the differences below). Phases k = 0 (frames only: ~/classification) and each ``--boxes``
value are interleaved over ``--rounds`` rounds of ``--seconds``; per k the best round counts
(the machine is shared: the least disturbed round).

Reported per k: arrays/s, boxes/s, ms per frame (the frame's classification + its k crops),
and ``ms_per_box`` = (ms per frame at k - ms per frame at 0) / k, ``box_over_frame`` =
ms_per_box / ms per frame at 0 (a box costs this fraction of a whole frame). Also the raw
engine in this process at batch 1 and batch 8 (its per-image ms, timed after its re-check on
its first frames has finished), the CPU, and the other processes' share of the CPU per phase
(/proc/stat minus this process and the node). The node's own re-check of a reduced-precision
engine on its first frames runs before the phases (the benchmark waits until the node is idle).
``--workdir`` keeps the model and the engine cache for the next run (no rebuild).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

NS = "/bench_det"
CAMERA, BOXES = f"{NS}/image_raw", f"{NS}/boxes"
NODE = f"{NS}/clip_perception"


def jiffies(pid=None) -> int:
    """Busy jiffies of the machine (pid None) or utime+stime of ``pid``."""
    try:
        if pid is None:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            return sum(fields) - fields[3] - fields[4]
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        return int(stat[11]) + int(stat[12])
    except OSError:
        return 0


class Load:
    """Other processes' share of all cores between ``start`` and ``share``."""

    def __init__(self, pids):
        self.pids, self.hz = pids, os.sysconf("SC_CLK_TCK")

    def start(self):
        return time.monotonic(), jiffies(), sum(jiffies(p) for p in self.pids)

    def share(self, since) -> float:
        t0, busy0, own0 = since
        t1, busy1, own1 = self.start()
        wall = (t1 - t0) * self.hz * (os.cpu_count() or 1)
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall) if wall > 0 else 0.0


def cpu() -> dict:
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16",
                       "amx_int8") if f in flags]
    return {"cpu": name, "isa": isa, "cores": os.cpu_count()}


class Loop:
    """Closed loop: publish frame (+ array), wait for the node's answer, repeat."""

    def __init__(self, client, rgb):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification, Detection2DArray

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.camera = client.create_publisher(Image, CAMERA, qos)
        self.boxes = client.create_publisher(Detection2DArray, BOXES, qos)
        self._answered = threading.Condition()
        self._last = None
        client.create_subscription(Classification, f"{NODE}/classification",
                                   lambda m: self._answer(m, 0), 10)
        client.create_subscription(Detection2DArray, f"{NODE}/detections",
                                   lambda m: self._answer(m, 1), 10)
        self.rgb, self._stamp = rgb, 2_100_000_000 * 10 ** 9

    def _answer(self, msg, kind) -> None:
        with self._answered:
            self._last = (kind, msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec)
            self._answered.notify_all()

    def run(self, boxes: int, seconds: float) -> tuple[int, float]:
        """(frames answered, seconds) of a closed loop with ``boxes`` per frame."""
        from detection_testing import detection_array
        from fake_detector import grid_boxes
        from node_testing import image_msg

        layout = grid_boxes(self.rgb.shape[1], self.rgb.shape[0], boxes)
        want_kind = 1 if boxes else 0
        done, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            self._stamp += 33_333_333
            stamp = self._stamp
            self.camera.publish(image_msg(self.rgb, stamp, "camera_optical"))
            if boxes:
                self.boxes.publish(detection_array(stamp, layout, "camera_optical"))
            with self._answered:
                if self._answered.wait_for(lambda: self._last == (want_kind, stamp), 10):
                    done += 1
        return done, time.monotonic() - start


def idle(pid: int, share: float = 0.05, window: float = 1.0, timeout: float = 300) -> float:
    """Wait until ``pid`` uses under ``share`` of a core over ``window`` s; seconds waited."""
    hz, start = os.sysconf("SC_CLK_TCK"), time.monotonic()
    while time.monotonic() - start < timeout:
        before = jiffies(pid)
        time.sleep(window)
        if (jiffies(pid) - before) / hz / window < share:
            break
    return time.monotonic() - start


def raw_engine(model_id, cache_dir, backend, precision, seconds=3.0) -> dict:
    from clip_perception.core.backends import create_image_encoder
    from clip_perception.core.model import load_clip

    clip = load_clip(model_id)
    encoder = create_image_encoder(clip, backend=backend, precision=precision,
                                   cache_dir=cache_dir, max_batch=8)
    out = {"engine": encoder.describe()}
    rng = np.random.default_rng(0)
    if hasattr(encoder, "wait"):  # the re-check on the first frames: finish it before timing
        from clip_perception.core.backends.photo_set import photo_batch

        x = photo_batch(clip.preprocess, 32)  # natural photos, as a camera would see
        for i in range(0, len(x), 8):
            encoder.encode_images(x[i:i + 8])
        out["recheck"] = encoder.wait(600)
        out["engine"] = encoder.describe()
    for batch in (1, 8):
        x = rng.normal(size=(batch, 3, clip.image_size, clip.image_size)).astype(np.float32)
        encoder.encode_images(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            encoder.encode_images(x)
            n += batch
        out[f"batch{batch}_ms_per_image"] = 1000 * (time.perf_counter() - start) / n
    encoder.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--boxes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from clip_perception.core.tiny_model import write_random_vit_b_32
    from node_testing import NodeProcess, pattern_image, use_profile_in_this_process, wait_until

    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="bench_detections_"))
    tmp.mkdir(parents=True, exist_ok=True)
    model_id = (f"local-dir:{tmp / 'vit_b_32'}" if (tmp / "vit_b_32").is_dir()
                else write_random_vit_b_32(tmp / "vit_b_32"))
    cache = tmp / "engines"
    print("raw engine (also builds the engines the node then loads from the cache) ...")
    raw = raw_engine(model_id, cache, args.backend, args.precision)
    print(f"  {raw}")
    node = NodeProcess(tmp / "node.log", dict(
        model=model_id, backend=args.backend, precision=args.precision,
        engine_cache_dir=str(cache), image_topics=[CAMERA], detection_topics=[BOXES],
        qos_reliability="reliable"), extra_ros_args=("-r", f"__ns:={NS}"))
    use_profile_in_this_process()
    rclpy.init()
    client = rclpy.create_node("bench_detections_client")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(client)
    threading.Thread(target=executor.spin, daemon=True).start()
    rgb = pattern_image(480, 640, seed=3)
    loop = Loop(client, rgb)
    load = Load([os.getpid(), node.proc.pid])
    phases: dict[int, list[dict]] = {k: [] for k in [0, *args.boxes]}
    try:
        ready = wait_until(lambda: loop.camera.get_subscription_count() > 0 and
                           loop.boxes.get_subscription_count() > 0 and loop.run(1, 0.5)[0], 300,
                           0.5)
        if not ready:
            raise SystemExit("node did not answer; its log:\n" + node.output()[-3000:])
        loop.run(4, 3.0)  # warm-up: the engine's re-check on its first frames starts
        waited = idle(node.proc.pid)
        print(f"node idle after {waited:.1f} s (its re-check on the first frames done)")
        for r in range(args.rounds):
            for k in phases:
                since = load.start()
                frames, seconds = loop.run(k, args.seconds)
                phases[k].append({"frames": frames, "seconds": seconds,
                                  "foreign_cpu": load.share(since)})
                print(f"round {r + 1} k={k}: {frames / seconds:.2f} frames/s, "
                      f"foreign CPU {phases[k][-1]['foreign_cpu']:.2f}")
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
        node.stop()
    served = [line for line in node.output().splitlines() if "configured:" in line]
    result = summarise(phases, raw, served[-1] if served else "", args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def summarise(phases, raw, served, args) -> dict:
    best = {k: max(runs, key=lambda p: p["frames"] / p["seconds"]) for k, runs in phases.items()}
    frame_ms = {k: 1000 * p["seconds"] / max(p["frames"], 1) for k, p in best.items()}
    per_k = {}
    for k in args.boxes:
        ms_box = (frame_ms[k] - frame_ms[0]) / k
        per_k[str(k)] = {
            "arrays_per_s": 1000 / frame_ms[k], "boxes_per_s": 1000 * k / frame_ms[k],
            "ms_per_frame_with_boxes": frame_ms[k], "ms_per_box": ms_box,
            "box_over_frame": ms_box / frame_ms[0], "foreign_cpu": best[k]["foreign_cpu"]}
    return {"cpu": cpu(), "load_average_1min": os.getloadavg()[0], "node": served,
            "raw_engine": raw, "frame_only_ms": frame_ms[0],
            "frame_only_foreign_cpu": best[0]["foreign_cpu"], "boxes": per_k,
            "rounds": args.rounds, "seconds": args.seconds,
            "phases": {str(k): v for k, v in phases.items()}}


if __name__ == "__main__":
    sys.exit(main())
