"""PerceptionWorker alone: preparing frames ahead vs serially, real preprocessing of 640x480
frames, with an encoder that leaves the CPU idle (a GPU stands in as a sleep) or, with
``--model``, the real engine the node would serve for ``--backend``/``--precision``.

    python benchmarks/bench_prepare_ahead.py [--encode-ms 10] [--seconds 5]
    python benchmarks/bench_prepare_ahead.py --model local-dir:PATH [--backend openvino
        --precision bf16] [--json PATH]

Frames are put at 1.25x the encoder-only rate (always one waiting, in both modes). Prints
images/s and result age for both modes, interleaved in slices. A sleeping encoder is the case
the preparer is for; whether it pays beside a CPU encoder that already uses every core is
what ``--model`` measures (docs/results/node.md).
"""
from __future__ import annotations

import argparse
import json
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


def sleeping_encoder(encode_s: float, ls):
    def encode(batch):
        time.sleep(encode_s)  # a GPU: the CPU is free meanwhile
        return np.tile(ls.classifier.class_embeddings[0], (batch.shape[0], 1))
    return encode


def run_once(ahead: bool, encode, hz: float, seconds: float, frame, pre, ls, cameras: int = 1):
    from clip_perception.core.pipeline import LatestFrameSlots, PerceptionWorker, PipelineStats

    names = [f"cam{i}" for i in range(cameras)]
    stats = PipelineStats(names)
    slots = LatestFrameSlots(names, stats)
    published = []

    worker = PerceptionWorker(slots, stats, lambda: ls, lambda cam, p: p, pre.resize_crop,
                              pre.normalize, encode, published.extend, prepare_ahead=ahead)
    worker.start()
    stop = threading.Event()

    def feed():
        next_t = time.monotonic()
        while not stop.is_set():
            for name in names:  # synchronised cameras: one batch of all of them per call
                slots.put(name, frame)
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


def real_engine(args):
    """The node's engine, preprocessing and a label set of its model (opened as the node opens
    them), and its batch-1 encode time in seconds."""
    from clip_perception.core.encoders import EncoderSpec, open_encoders
    from clip_perception.core.vocabulary import build_label_set
    from label_sets import spec

    enc = open_encoders(EncoderSpec(model=args.model, backend=args.backend,
                                    precision=args.precision, cache_dir=args.cache_dir,
                                    background_build=False))
    ls = build_label_set(spec(), enc.prompt_cache, enc.clip.logit_scale, enc.clip.embed_dim, 1)
    batch = enc.preprocessor([np.zeros((480, 640, 3), np.uint8)])
    for _ in range(3):
        enc.image_encoder.encode_images(batch)
    start = time.perf_counter()
    for _ in range(10):
        enc.image_encoder.encode_images(batch)
    return enc, ls, (time.perf_counter() - start) / 10


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encode-ms", type=float, default=10.0)
    p.add_argument("--model", help="time the real engine of this model instead of a sleep")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--cache-dir", help="engine cache (default: a temporary folder)")
    p.add_argument("--cameras", type=int, default=1,
                   help="cameras fed together (their frames share one engine call)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--slices", type=int, default=3)
    p.add_argument("--json", help="write the result to this file")
    args = p.parse_args(argv)
    from node_testing import pattern_image
    from clip_perception.core import devices
    from clip_perception.core.preprocess import PreprocessConfig, Preprocessor
    from label_sets import label_set

    tmp = None
    if args.model:
        if not args.cache_dir:
            tmp = tempfile.TemporaryDirectory(prefix="bench_prepare_ahead_")
            args.cache_dir = tmp.name
        enc, ls, encode_s = real_engine(args)
        pre, encode = enc.preprocessor, enc.image_encoder.encode_images
        what = f"{enc.image_encoder.describe()} {encode_s * 1000:.1f} ms"
    else:
        pre = Preprocessor(PreprocessConfig(224, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)))
        ls, encode_s = label_set(), args.encode_ms / 1000
        encode, what = sleeping_encoder(encode_s, ls), f"(sleep) {args.encode_ms:g} ms"
    frame = pattern_image(480, 640)
    start = time.perf_counter()
    for _ in range(20):
        pre.normalize(pre.resize_crop(frame)[None])
    prep_ms = (time.perf_counter() - start) / 20 * 1000
    hz = 1.25 / encode_s
    cpu = devices.cpu_identity()
    cpu_text = f"{cpu['model']} ({devices.isa_label(cpu['isa'])})"
    print(f"cpu {cpu_text}; encode {what}, preprocess {prep_ms:.1f} ms/frame, "
          f"frames put at {hz:.0f} Hz on each of {args.cameras} camera(s)")
    rows = {True: [], False: []}
    for _ in range(args.slices):
        for ahead in (False, True):
            rows[ahead].append(run_once(ahead, encode, hz, args.seconds, frame, pre, ls,
                                        args.cameras))
    result = {"encoder": what, "cpu": cpu_text, "preprocess_ms": prep_ms, "cameras": args.cameras,
              "load_average": open("/proc/loadavg").read().split()[:3]}
    for ahead in (False, True):
        rates = [r[0] for r in rows[ahead]]
        print(f"prepare_ahead={ahead!s:5}: images/s {statistics.median(rates):6.1f} "
              f"(slices {', '.join(f'{x:.1f}' for x in rates)}); mean age in node "
              f"{statistics.median(r[1] for r in rows[ahead]):.1f} ms; prepared ahead "
              f"{sum(r[2] for r in rows[ahead])}")
        result["ahead" if ahead else "serial"] = {
            "images_per_s": rates, "mean_age_ms": [r[1] for r in rows[ahead]]}
    gain = statistics.median(r[0] for r in rows[True]) / statistics.median(
        r[0] for r in rows[False])
    print(f"ahead / serial: {gain:.2f}x")
    result["ahead_over_serial"] = gain
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
