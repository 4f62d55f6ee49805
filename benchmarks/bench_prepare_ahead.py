"""PerceptionWorker alone: preparing frames ahead vs serially, with an encoder that leaves the
CPU idle (a GPU stands in as a sleep), real decode-free exact preprocessing of 640x480 frames.

    python benchmarks/bench_prepare_ahead.py [--encode-ms 10] [--seconds 5]

Frames are put at 1.25x the encoder-only rate (always one waiting, in both modes). Prints images/s and result age
for both modes, interleaved in slices. This is the case the preparer is for; with a CPU
encoder that already uses every core it is off (see docs/results/node.md).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))


def run_once(ahead: bool, encode_s: float, hz: float, seconds: float, frame, pre, ls):
    from clip_perception.core.pipeline import LatestFrameSlots, PerceptionWorker, PipelineStats

    stats = PipelineStats(["cam"])
    slots = LatestFrameSlots(["cam"], stats)
    published = []

    def encode(batch):
        time.sleep(encode_s)  # a GPU: the CPU is free meanwhile
        return np.tile(ls.classifier.class_embeddings[0], (batch.shape[0], 1))

    worker = PerceptionWorker(slots, stats, lambda: ls, lambda cam, p: p, pre.resize_crop,
                              pre.normalize, encode, published.extend, prepare_ahead=ahead)
    worker.start()
    stop = threading.Event()

    def feed():
        next_t = time.monotonic()
        while not stop.is_set():
            slots.put("cam", frame)
            next_t += 1.0 / hz
            time.sleep(max(0.0, next_t - time.monotonic()))
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(0.5)  # EMAs settle
    n0, t0 = len(published), time.monotonic()
    time.sleep(seconds)
    n1, t1 = len(published), time.monotonic()
    stop.set()
    feeder.join()
    worker.stop()
    snap = stats.snapshot()  # age: frame put -> published, mean over the run
    return (n1 - n0) / (t1 - t0), snap.stages["age"].mean * 1000, snap.prepared_ahead


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encode-ms", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--slices", type=int, default=3)
    args = p.parse_args(argv)
    from node_testing import pattern_image
    from clip_perception.core.preprocess import PreprocessConfig, Preprocessor
    from test_node_perception import label_set

    pre = Preprocessor(PreprocessConfig(224, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)))
    frame = pattern_image(480, 640)
    start = time.perf_counter()
    for _ in range(20):
        pre.normalize(pre.resize_crop(frame)[None])
    prep_ms = (time.perf_counter() - start) / 20 * 1000
    hz = 1.25 * 1000.0 / args.encode_ms
    print(f"encode (sleep) {args.encode_ms:g} ms, preprocess {prep_ms:.1f} ms/frame, "
          f"frames put at {hz:.0f} Hz")
    rows = {True: [], False: []}
    for _ in range(args.slices):
        for ahead in (False, True):
            rows[ahead].append(run_once(ahead, args.encode_ms / 1000, hz, args.seconds, frame,
                                        pre, label_set()))
    for ahead in (False, True):
        rates = [r[0] for r in rows[ahead]]
        print(f"prepare_ahead={ahead!s:5}: images/s {statistics.median(rates):6.1f} "
              f"(slices {', '.join(f'{x:.1f}' for x in rates)}); mean age in node "
              f"{statistics.median(r[1] for r in rows[ahead]):.1f} ms; prepared ahead "
              f"{sum(r[2] for r in rows[ahead])}")
    gain = statistics.median(r[0] for r in rows[True]) / statistics.median(
        r[0] for r in rows[False])
    print(f"ahead / serial: {gain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
