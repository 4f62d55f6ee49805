"""The node end to end vs its engine: throughput, result age, every frame with a fast engine.

    python benchmarks/bench_node.py [--backend auto] [--precision auto] [--slices 6]
        [--seconds 2] [--camera-seconds 20] [--json PATH] [--compare-repo /other/checkout]
        [--compare-param NAME=VALUE ...]

Default config = what the node does with its default parameters (``backend``/``precision``
``auto``), on the outlier stress model (``write_outlier_vit_b_32``; ``--model`` for another).
The machine is shared and its load moves within seconds, so
phases are interleaved in short slices and every ratio compares phases of one slice:
1. raw engine: ``encode_images`` on an already preprocessed frame, batch 1, in this process;
2. raw preprocess+engine: the node's default preprocessing (``preprocess_resize: fast``) of the
   640x480 frame, then encode;
3. each node (this checkout, and ``--compare-repo``'s if given) gets one camera published at
   ``--saturate`` x the slice's raw engine rate (a frame always waits, no flood). Node images/s
   = results on ~/classification per second.
``node_over_engine`` = node / raw engine (issue goal >= 0.9; the raw engine is run right
before and right after each node phase, and their mean is the node's comparison), and the
node's own per-stage means from its /diagnostics; ``node_over_pre_engine`` = node /
raw preprocess+engine, ``preprocess_fraction`` = preprocessing time / engine time per frame
(raw engine / raw preprocess+engine - 1); medians over slices with little foreign CPU.

Then cameras at 30 Hz (``--camera-hz``), 1 and 3 cameras (synchronised: every camera publishes
at the same tick), ``--camera-seconds`` each: result age (receive time - frame stamp, both this
process's clock) p50/p95/max, results per second, and results / frames sent, with the engine
the node served in that phase. Each camera phase is compared with the raw engine at the batch
the node runs (``over_engine_at_batch``: batch 3 for 3 cameras when the engine batches, else
batch 1) and with raw torch eager at batch 1 (``over_torch_eager``; issue 19's AVX2 goal).
The same for the tiny test model (engine ~1 ms: the "every frame when the engine is fast" case,
goal >= 0.98). The CPU model, its ISA flags and the load average are in the report and JSON.

Exported/quantised models go to a temporary engine cache. Benchmarks on a shared machine are
noisy: the report prints other processes' CPU share per phase.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

from clip_perception.core import devices  # noqa: E402
from clip_perception.core.backends.frame_recheck import DEFAULT_RECHECK_FRAMES  # noqa: E402


class ForeignCpu:
    """CPU used by processes other than this one and the nodes, as a share of all cores.

    The machine is shared: a phase during which someone else's job ran is not comparable.
    Busy jiffies of the whole machine (/proc/stat) minus those of our own processes.
    """

    def __init__(self):
        self.pids = [os.getpid()]
        self._hz = os.sysconf("SC_CLK_TCK")

    def _read(self) -> tuple[float, int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
        own = sum(process_jiffies(pid) for pid in self.pids)
        return time.monotonic(), busy, own

    def start(self):
        return self._read()

    def share(self, since) -> float:
        t1, busy1, own1 = self._read()
        t0, busy0, own0 = since
        wall = (t1 - t0) * self._hz * (os.cpu_count() or 1)
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall) if wall > 0 else 0.0


def process_jiffies(pid: int) -> int:
    """utime + stime of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        return int(stat[11]) + int(stat[12])
    except OSError:
        return 0


def wait_until_idle(pids, max_share: float = 0.05, window: float = 1.0,
                    timeout: float = 90.0) -> float:
    """Wait until ``pids`` together use less than ``max_share`` of one core over ``window``
    seconds (a node's background work, e.g. the re-check of its engine on its first camera
    frames, would otherwise run inside the next raw phase); returns the seconds waited."""
    hz, start = os.sysconf("SC_CLK_TCK"), time.monotonic()
    while time.monotonic() - start < timeout:
        before = sum(process_jiffies(p) for p in pids)
        time.sleep(window)
        if (sum(process_jiffies(p) for p in pids) - before) / hz / window < max_share:
            break
    return time.monotonic() - start


class RawBackend:
    """The node's backend in this process (batch 1 unless asked)."""

    def __init__(self, model_id: str, backend: str, precision: str, cache_dir: Path,
                 frame: np.ndarray, threads: int = 0):
        # Opened exactly as the node opens its engine (core.encoders), so "raw" is the node's
        # engine and preprocessing, not a copy of how they are assembled.
        from clip_perception.core.backends.torch_backend import TorchImageEncoder
        from clip_perception.core.encoders import (EncoderSpec, load_model,
                                                   open_image_encoder)
        from clip_perception.core.preprocess import Preprocessor

        spec = EncoderSpec(model=model_id, backend=backend, precision=precision,
                           cache_dir=str(cache_dir), threads=threads,
                           background_build=False)  # time the engine served, not a stand-in
        clip = load_model(spec)
        self.encoder = open_image_encoder(spec, clip)
        self.torch = TorchImageEncoder(clip)  # issue 19's yardstick: torch eager, batch 1
        self.pre = Preprocessor(clip.preprocess, spec.preprocess_resize)
        self.frame = frame
        self.batch = self.pre([frame])
        for _ in range(3):
            self.encoder.encode_images(self.batch)

    def rate(self, seconds: float, with_preprocess: bool = False, batch: int = 1,
             torch: bool = False) -> float:
        """Frames per second (of the torch eager encoder with ``torch``)."""
        inputs = np.repeat(self.batch, batch, axis=0)
        encoder = self.torch if torch else self.encoder
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            encoder.encode_images(self.pre([self.frame] * batch) if with_preprocess
                                  else inputs)
            n += batch
        return n / (time.perf_counter() - start)

    def split(self, seconds: float) -> tuple[float, float]:
        """Median seconds per frame of preprocessing (the node's default method) and of the
        engine, alternated."""
        pre, enc, start = [], [], time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            batch = self.pre([self.frame])
            t1 = time.perf_counter()
            self.encoder.encode_images(batch)
            pre.append(t1 - t0)
            enc.append(time.perf_counter() - t1)
        return statistics.median(pre), statistics.median(enc)


class BenchNode:
    """A node process from ``repo`` (its own code) in namespace ``ns``, and its results."""

    def __init__(self, name: str, repo: Path, ns: str, params: dict, log: Path, client,
                 cameras: int = 3):
        from node_testing import param_args, ros_env
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification
        from node_testing import stamp_ns

        self.name, self.ns, self.repo = name, ns, repo
        self.topics = [f"{ns}/bench/cam{i}/image_raw" for i in range(cameras)]
        env = ros_env()
        env["PYTHONPATH"] = str(repo)
        self._log = open(log, "wb")
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clip_perception.cli.node", "--ros-args",
             "-r", f"__ns:={ns}"] + param_args(dict(params, image_topics=self.topics)),
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(repo))
        self.pubs = [client.create_publisher(Image, t, QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)) for t in self.topics]
        # (receive time ns, frame stamp ns, camera frame_id)
        self.results: list[tuple[int, int, str]] = []
        self.output_topic = f"{ns}/clip_perception/classification"
        client.create_subscription(Classification, self.output_topic, lambda m: self.results
                                   .append((time.time_ns(), stamp_ns(m), m.header.frame_id)),
                                   1000)
        # the node's own per-stage means from /diagnostics: (receive time ns, {stage: ms})
        self.stages: list[tuple[int, dict]] = []
        self._status_name = f"{ns.strip('/')}/clip_perception: pipeline"
        self.prepare_ahead = ""

    def diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.lstrip("/") == self._status_name:
                values = {kv.key: kv.value for kv in status.values}
                means = {k.split(" ms mean")[0]: float(v) for k, v in values.items()
                         if " ms mean" in k}
                means["frames/s"] = float(values.get("processed frames/s", "nan"))
                means["prepared ahead"] = float(values.get("frames prepared ahead", "nan"))
                self.stages.append((time.time_ns(), means))
                self.prepare_ahead = values.get("prepare ahead", "")  # the rule's last word

    def stage_means(self, t0: int, t1: int) -> dict:
        """Median over the diagnostics windows that ended in [t0, t1] of each stage's mean ms
        (decode/preprocess per frame, encode = normalise + engine, score, publish per call)."""
        rows = [m for t, m in self.stages if t0 < t <= t1]
        keys = sorted({k for m in rows for k in m})
        return {k: median(m[k] for m in rows if k in m) for k in keys}

    def ready(self, client) -> bool:
        return all(p.get_subscription_count() for p in self.pubs) and \
            client.count_publishers(self.output_topic) > 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()

    def window(self, t0: int, t1: int) -> tuple[float, list[float]]:
        """(images/s from the first to the last result for a frame sent in [t0, t1], ages ms)."""
        got = [(r, s) for r, s, _ in self.results if t0 <= s <= t1]
        rate = (len(got) - 1) / ((got[-1][0] - got[0][0]) / 1e9) if len(got) > 2 else 0.0
        return rate, [(r - s) / 1e6 for r, s in got]


class BareSubscriber:
    """Another process that only takes the camera's messages (raw, newest kept): the raw
    engine timed while the bench publishes to it measures what the camera stream alone costs
    the engine on this machine (publisher, DDS, a subscriber), apart from the node's work."""

    SCRIPT = (
        "import rclpy\n"
        "from rclpy.executors import SingleThreadedExecutor, ExternalShutdownException\n"
        "from rclpy.qos import QoSProfile, ReliabilityPolicy\n"
        "from sensor_msgs.msg import Image\n"
        "rclpy.init()\n"
        "node = rclpy.create_node('bench_bare_subscriber')\n"
        "kept = [None]\n"
        "qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)\n"
        "node.create_subscription(Image, {topic!r}, lambda m: kept.__setitem__(0, m), qos,\n"
        "                         raw=True)\n"
        "executor = SingleThreadedExecutor()\n"
        "executor.add_node(node)\n"
        "try:\n"
        "    executor.spin()\n"
        "except (KeyboardInterrupt, ExternalShutdownException):\n"
        "    pass\n")

    def __init__(self, client, topic: str = "/bench_bare/image_raw"):
        from node_testing import ros_env
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.proc = subprocess.Popen([sys.executable, "-c", self.SCRIPT.format(topic=topic)],
                                     env=ros_env())
        self.pubs = [client.create_publisher(Image, topic, QoSProfile(
            depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))]

    def ready(self, client) -> bool:
        return bool(self.pubs[0].get_subscription_count())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def raw_rate_with_camera(raw: RawBackend, pub: "Publisher", bare: BareSubscriber,
                         seconds: float, hz: float) -> float:
    """The raw engine's rate while the camera publishes at ``hz`` to the bare subscriber."""
    publishing = threading.Thread(target=pub.run, args=(bare, seconds + 0.7, hz))
    publishing.start()
    time.sleep(0.3)
    try:
        return raw.rate(seconds)
    finally:
        publishing.join()


def median(values) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def age_fields(ages: list[float]) -> dict:
    if not ages:
        return dict(age_p50_ms=None, age_p95_ms=None, age_max_ms=None)
    return dict(age_p50_ms=float(np.percentile(ages, 50)),
                age_p95_ms=float(np.percentile(ages, 95)), age_max_ms=float(max(ages)))


class Publisher:
    """Publishes pre-built frames (one per camera) from this process; only the stamp changes."""

    def __init__(self, cameras: int):
        from node_testing import image_msg, pattern_image

        self.msgs = [image_msg(pattern_image(480, 640, seed=i), 0, f"cam{i}")
                     for i in range(cameras)]

    def run(self, node: BenchNode, duration: float, hz: float, cameras: int = 1):
        """Publish to the first ``cameras`` topics at ``hz`` each; (t0 ns, t1 ns, frames sent)."""
        period, start = 1.0 / hz, time.monotonic()
        next_t, t0, sent = start, time.time_ns(), 0
        while time.monotonic() - start < duration:
            for msg, pub in zip(self.msgs[:cameras], node.pubs[:cameras]):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10 ** 9)
                pub.publish(msg)
                sent += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        return t0, time.time_ns(), sent


def camera_phase(node: BenchNode, pub: Publisher, cameras: int, args, foreign) -> dict:
    pub.run(node, 1.0, args.camera_hz, cameras)  # the pipeline fills before counting
    since = foreign.start()
    t0, t1, sent = pub.run(node, args.camera_seconds, args.camera_hz, cameras)
    time.sleep(1.0)  # results of the last frames arrive
    rate, ages = node.window(t0, t1)
    per_camera = [sum(1 for r in node.results if t0 <= r[1] <= t1 and r[2] == f"cam{i}")
                  for i in range(cameras)]
    return dict(cameras=cameras, hz=args.camera_hz, frames_sent=sent, results=len(ages),
                results_over_sent=len(ages) / sent if sent else 0.0, results_per_s=rate,
                results_per_camera=per_camera, engine=served_backend(node.log_path),
                foreign_cpu=foreign.share(since), load_average=os.getloadavg()[0],
                **age_fields(ages))


def run(model_id: str, tiny_id: str, args, tmp: Path) -> dict:
    from node_testing import pattern_image, use_profile_in_this_process
    use_profile_in_this_process()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    cache = tmp / "engine_cache"
    frame = pattern_image(480, 640)
    # First: exports (and for int8 quantises + verifies) into the cache the nodes then load.
    raw = RawBackend(model_id, args.backend, args.precision, cache, frame, args.threads)
    rclpy.init()
    client = rclpy.create_node("bench_node_client")
    params = dict(pretrained="", backend=args.backend, precision=args.precision,
                  engine_cache_dir=str(cache), encoder_threads=args.threads,
                  labels=["a", "b", "c"], top_k=3)
    nodes = [BenchNode("this", REPO, "/this", dict(params, model=model_id), tmp / "this.log",
                       client)]
    if args.compare_repo or args.compare_param:
        nodes.append(BenchNode("compare", Path(args.compare_repo or REPO).resolve(), "/compare",
                               dict(params, model=model_id, **dict(args.compare_param)),
                               tmp / "compare.log", client))
    fast = [] if args.no_fast_engine else [
        BenchNode(f"{n.name}_tiny", n.repo, f"{n.ns}_tiny", dict(params, model=tiny_id),
                  tmp / f"{n.name}_tiny.log", client) for n in nodes]
    from diagnostic_msgs.msg import DiagnosticArray
    client.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: [n.diagnostics(m) for n in nodes], 50)
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    threading.Thread(target=executor.spin, daemon=True).start()
    pub = Publisher(3)
    bare = BareSubscriber(client)
    foreign = ForeignCpu()
    foreign.pids += [n.proc.pid for n in nodes + fast] + [bare.proc.pid]
    slices, cameras = [], {}
    try:
        deadline = time.monotonic() + 300
        while not all(n.ready(client) for n in nodes + fast + [bare]):
            for n in nodes + fast:
                if n.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"node {n.name} did not come up:\n"
                                       f"{n.log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        for n in nodes + fast:  # warm-up: first inferences, thread pools, EMAs
            pub.run(n, 3.0, args.camera_hz, 3)
        # ... and the engine re-check on the first camera frames (torch on 32 frames): done
        # before any raw phase, whose CPU it would otherwise share.
        for n in nodes + fast:
            until = time.monotonic() + 120
            while len(n.results) < DEFAULT_RECHECK_FRAMES + 2 and time.monotonic() < until:
                pub.run(n, 1.0, args.camera_hz, 3)
        waited = wait_until_idle([n.proc.pid for n in nodes + fast])
        print(f"[bench] nodes idle after warm-up (waited {waited:.1f} s)", flush=True)
        for _ in range(args.slices):
            since = foreign.start()
            row = dict(raw_pre=raw.rate(args.seconds, with_preprocess=True),
                       raw_batch3=raw.rate(args.seconds, batch=3),
                       raw_torch=raw.rate(args.seconds, torch=True))
            row["pre_s"], row["engine_s"] = raw.split(args.seconds)
            # Every node phase is bracketed by raw engine runs, and compared with their mean:
            # this guest's speed drifts by up to 30 % within seconds, so a raw rate taken a
            # few phases earlier says little about the node's phase.
            brackets = [raw.rate(args.seconds)]
            row["hz"] = args.saturate * brackets[0]
            for n in nodes:
                pub.run(n, 0.5, row["hz"])
                t0, t1, _ = pub.run(n, args.seconds * 1.5, row["hz"])
                row[n.name] = n.window(t0, t1)[0]
                row[f"{n.name}_stages_ms"] = n.stage_means(t0, time.time_ns())
                time.sleep(0.3)  # idle again before the next phase
                brackets.append(raw.rate(args.seconds))
                row[f"{n.name}_raw"] = (brackets[-2] + brackets[-1]) / 2
            row["raw"] = median(brackets)
            row["raw_with_camera"] = raw_rate_with_camera(raw, pub, bare, args.seconds,
                                                          row["hz"])
            row["raw_brackets"] = brackets
            row["foreign"] = foreign.share(since)
            slices.append(row)
        for count in args.cameras:
            for n in nodes + fast:
                cameras[f"{n.name}/{count}"] = camera_phase(n, pub, count, args, foreign)
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
        for n in nodes + fast + [bare]:
            n.stop()
    return {"slices": slices, "cameras": cameras, "nodes": [n.name for n in nodes],
            "backend": raw.encoder.describe(), "engine_batches": bool(raw.encoder.batches),
            "preprocess_resize": raw.pre.resize,
            "prepare_ahead": {n.name: n.prepare_ahead for n in nodes},
            "node_backends": {n.name: served_backend(n.log_path) for n in nodes + fast}}


def served_backend(log: Path) -> str:
    """The image backend the node itself chose, from its startup summary line."""
    found = re.findall(r"backend (.+?), text ", log.read_text(errors="replace"))
    return found[-1] if found else "(not in the node's log)"


def node_parameter(text: str) -> tuple:
    """NAME=VALUE with VALUE read as YAML, as ``ros2 run ... -p`` reads it."""
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    return name, yaml.safe_load(value) if value else ""


def summarise(out: dict, args) -> dict:
    quiet = [r for r in out["slices"] if r["foreign"] < args.max_other_cpu]
    all_loaded = not quiet  # then the medians use every slice, and the report says so
    quiet = quiet or out["slices"]
    engine_ms = 1000.0 / median(r["raw"] for r in quiet)
    cpu = devices.cpu_identity()
    summary = dict(
        cpu=cpu["model"], isa=cpu["isa"], cores=os.cpu_count(), backend=out["backend"],
        engine_batches=out["engine_batches"], load_average_end=os.getloadavg()[0],
        preprocess_resize=out["preprocess_resize"],
        compare_params=dict(args.compare_param),
        node_backends=out["node_backends"],
        slices_used=len(quiet), slices=len(out["slices"]), all_slices_loaded=all_loaded,
        engine_ms=engine_ms,
        # the engine while only the camera stream runs (publisher + DDS + a bare subscriber)
        engine_with_camera_over_engine=median(r["raw_with_camera"] / r["raw"] for r in quiet),
        engine_batch3_ms_per_frame=1000.0 / median(
            r["raw_batch3"] for r in quiet),
        torch_eager_ms=1000.0 / median(r["raw_torch"] for r in quiet),
        # preprocessing / engine time per frame, both timed in the same loop
        preprocess_fraction=median(r["pre_s"] / r["engine_s"] for r in quiet),
        preprocess_ms=1000.0 * median(r["pre_s"] for r in quiet),
        nodes={}, raw_slices=out["slices"], camera_phases=out["cameras"])
    for name in out["nodes"]:
        one = out["cameras"].get(f"{name}/1", {})
        summary["nodes"][name] = dict(
            node_over_engine=median(r[name] / r[f"{name}_raw"] for r in quiet),
            node_over_pre_engine=median(r[name] / r["raw_pre"] for r in quiet),
            # the node's own cost: against the engine with the same camera stream running
            node_over_engine_with_camera=median(r[name] / r["raw_with_camera"] for r in quiet),
            # where a node's frame time goes, by its own /diagnostics (medians over slices)
            stages_ms={k: median(r[f"{name}_stages_ms"].get(k, float("nan")) for r in quiet)
                       for k in sorted({k for r in quiet for k in r[f"{name}_stages_ms"]})},
            prepare_ahead=out["prepare_ahead"][name],  # the node's rule, its last /diagnostics
            **{k: one.get(k) for k in ("age_p50_ms", "age_p95_ms", "age_max_ms")})
    for key, c in out["cameras"].items():
        # the raw engine at the batch this node runs: one frame per camera per call, if it
        # batches at all (frame by frame engines run batch 1 whatever the cameras)
        if key.split("/")[0].endswith("_tiny"):
            continue  # the raw phases time the big model's engine only
        batch3 = out["engine_batches"] and c["cameras"] >= 3
        engine = median(r["raw_batch3" if batch3 else "raw"] for r in quiet)
        c["over_engine_at_batch"] = c["results_per_s"] / engine
        c["engine_batch"] = 3 if batch3 else 1
        c["over_torch_eager"] = c["results_per_s"] / median(r["raw_torch"] for r in quiet)
    # The fields at top level: this checkout, one camera, default config.
    summary.update(summary["nodes"]["this"])
    return summary


def report(s: dict) -> None:
    print("node backends: " + "; ".join(f"{k}: {v}" for k, v in s["node_backends"].items()))
    print(f"backend {s['backend']}; {s['cpu']} ({', '.join(s['isa'])}), {s['cores']} CPUs; "
          f"load average at the end {s['load_average_end']:.1f}; medians over {s['slices_used']} of {s['slices']} slices" +
          (" (EVERY slice had other processes above --max-other-cpu: noisy)"
           if s["all_slices_loaded"] else ""))
    print("slice  other CPU  raw engine  raw+camera  raw pre+engine  raw batch3/frame  " +
          "  ".join(f"{n} img/s" for n in s["nodes"]))
    for i, r in enumerate(s["raw_slices"]):
        print(f"{i:5d}  {r['foreign'] * 100:8.0f}%  {r['raw']:10.2f}  "
              f"{r['raw_with_camera']:10.2f}  {r['raw_pre']:14.2f}  "
              f"{r['raw_batch3']:16.2f}  " + "  ".join(f"{r[n]:10.2f}" for n in s["nodes"]))
    print(f"engine {s['engine_ms']:.1f} ms/frame (batch 3: {s['engine_batch3_ms_per_frame']:.1f}"
          f" ms/frame); {s['preprocess_resize']} preprocessing {s['preprocess_ms']:.2f} ms/frame, "
          f"preprocess_fraction {s['preprocess_fraction']:.3f} (goal <= 0.10); the engine "
          f"with only the camera stream running: {s['engine_with_camera_over_engine']:.3f} "
          f"of its rate; torch eager batch 1 {s['torch_eager_ms']:.1f} ms/frame")
    for name, n in s["nodes"].items():
        print(f"{name}: node_over_engine {n['node_over_engine']:.3f} (goal >= 0.9), "
              f"node_over_pre_engine {n['node_over_pre_engine']:.3f}, "
              f"node_over_engine_with_camera {n['node_over_engine_with_camera']:.3f}")
        print(f"{name} stages (ms, its /diagnostics): " + ", ".join(
            f"{k} {v:.2f}" for k, v in n["stages_ms"].items()))
        print(f"{name} prepare ahead: {n['prepare_ahead'] or '(not reported)'}")
    for key, c in s["camera_phases"].items():
        ages = ("no results" if c["age_p50_ms"] is None else
                f"age ms p50 {c['age_p50_ms']:.0f} p95 {c['age_p95_ms']:.0f} "
                f"max {c['age_max_ms']:.0f}")
        ratios = ("" if "over_engine_at_batch" not in c else
                  f", {c['over_engine_at_batch']:.3f} of the raw engine at batch "
                  f"{c['engine_batch']}, {c['over_torch_eager']:.2f}x torch eager batch 1")
        print(f"{key} camera(s) at {c['hz']:g} Hz [{c['engine']}]: {c['results']}/"
              f"{c['frames_sent']} frames got a result ({c['results_over_sent']:.3f}; per camera "
              f"{c['results_per_camera']}), {c['results_per_s']:.1f} results/s{ratios}, {ages}, "
              f"other CPU {c['foreign_cpu'] * 100:.0f}%, load average {c['load_average']:.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model id (default: the outlier stress ViT-B-32 written to "
                   "a temp dir)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="encoder threads, raw and node (0 = every core)")
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0,
                   help="raw phases per slice; node phases measure 1.5x this")
    p.add_argument("--saturate", type=float, default=1.25,
                   help="throughput phases publish at this x the slice's raw engine rate")
    p.add_argument("--camera-hz", type=float, default=30.0)
    p.add_argument("--camera-seconds", type=float, default=20.0)
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 3])
    p.add_argument("--no-fast-engine", action="store_true",
                   help="skip the tiny-model (fast engine) nodes")
    p.add_argument("--max-other-cpu", type=float, default=0.1,
                   help="slices where other processes used more than this share of the CPU "
                        "are printed but left out of the medians")
    p.add_argument("--compare-repo", help="also run the node from this checkout, side by side")
    p.add_argument("--compare-param", action="append", default=[], type=node_parameter,
                   metavar="NAME=VALUE", help="a parameter of the compare node only (its "
                   "checkout: --compare-repo, else this one), e.g. preprocess_resize=exact")
    p.add_argument("--json", help="write the summary (issue 14's fields) to this file")
    args = p.parse_args(argv)
    from clip_perception.core.tiny_model import write_outlier_vit_b_32, write_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        tmp = Path(tmp)
        model_id = args.model or write_outlier_vit_b_32(tmp / "stress_vit_b_32")
        summary = summarise(run(model_id, write_tiny_model(tmp / "tiny"), args, tmp), args)
    report(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
