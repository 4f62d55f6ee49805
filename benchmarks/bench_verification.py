"""The verification rule against real engines and injected noise: what it accepts, what it refuses.

    python benchmarks/bench_verification.py [--json PATH] [--cache DIR] [--threads N]

On the outlier stress model (core/tiny_model.write_outlier_vit_b_32) and the 128 natural photo
views, each candidate is verified as at startup (batches of 8, a few frames alone), and an
engine the node runs frame by frame (int8) also with every photo alone, by the rule (agreement.py: ties forgiven, both
label top-1 and nearest image) and by the old strict rule (label top-1 on >= 99 % of all photos,
ties counted). Candidates:
- the real engines measurable here: torch fp32, onnxruntime int8 without smoothing (dynamic
  per-tensor activations: broken by the outliers), the default smoothed int8, OpenVINO fp32 and
  bf16 (where the CPU runs bf16);
- torch fp32 with injected errors at increasing levels: isotropic noise on the embedding
  (``isotropic``), every photo pushed towards one label (``bias``), and a few photos (1 in 32)
  pushed from fp32's top label towards its second (``flip``: a fault cosine hardly sees).
Injected errors are seeded by the photo's pixels, so a frame gets the same error alone or in a
batch. The CPU model, its ISA flags and the machine load are printed and written to the JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_perception.core import devices  # noqa: E402
from clip_perception.core.backends import engines as engine_table  # noqa: E402
from clip_perception.core.backends import int8, onnx_export  # noqa: E402
from clip_perception.core.backends import openvino_backend as ovb  # noqa: E402
from clip_perception.core.backends.base import BackendUnavailable, ImageEncoder  # noqa: E402
from clip_perception.core.backends.torch_backend import TorchImageEncoder  # noqa: E402
from clip_perception.core.backends.verify import (BATCH_INDEPENDENCE_COSINE,  # noqa: E402
                                                  DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1,
                                                  TorchReference)
from clip_perception.core.model import load_clip  # noqa: E402
from clip_perception.core.tiny_model import write_outlier_vit_b_32  # noqa: E402

LEVELS = {"isotropic": (0.005, 0.01, 0.02, 0.03, 0.045, 0.07),
          "bias": (0.002, 0.005, 0.01, 0.02, 0.04),
          "flip": (0.005, 0.01, 0.02, 0.04, 0.07, 0.1)}
FLIP_EVERY = 32


class Injected(ImageEncoder):
    """fp32 embeddings of the photo views (replayed: torch is deterministic) plus an error."""

    name, precision = "torch+error", "fp32"

    def __init__(self, reference, kind: str, level: float):
        self.kind, self.level = kind, level
        self.ref = reference.embeddings
        self.rows = {_digest(x): i for i, x in enumerate(reference.inputs)}
        labels = reference.label_embeddings
        scores = self.ref @ labels.T
        self.target = labels[np.bincount(scores.argmax(1), minlength=len(labels)).argmin()]
        order = np.argsort(scores, axis=1)
        away = labels[order[:, -2]] - labels[order[:, -1]]  # from top-1 towards top-2
        self.away = away / np.linalg.norm(away, axis=1, keepdims=True)

    def describe(self) -> str:
        return f"torch fp32 + {self.kind} {self.level}"

    def encode_images(self, batch):
        out = []
        for x in batch:
            key = _digest(x)
            i = self.rows[key]
            e = self.ref[i].astype(np.float64)
            if self.kind == "isotropic":
                rng = np.random.default_rng(int(key[:8], 16))
                e = e + self.level * rng.standard_normal(e.shape) / math.sqrt(e.size)
            elif self.kind == "bias":
                e = e + self.level * self.target
            elif self.kind == "flip" and i % FLIP_EVERY == FLIP_EVERY // 2:
                e = e + self.level * self.away[i]
            out.append(e / np.linalg.norm(e))
        return np.asarray(out, np.float32)


def _digest(x) -> str:
    return hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()


def real_engines(clip, cache, threads, reference, notes):
    engines = {"torch fp32": TorchImageEncoder(clip)}
    fp32_path = onnx_export.ensure_image_onnx(clip, cache)
    for name, options in (("onnxruntime int8, no smoothing (dynamic)", int8.DYNAMIC_INT8_OPTIONS),
                          ("onnxruntime int8 default (smoothed)", int8.INT8_OPTIONS)):
        engines[name] = int8.load_or_quantize_int8(
            clip, fp32_path, cache, threads=threads, reference=reference, options=options,
            min_cosine=0.0, min_top1=0.0).value
    for precision in [e.precision for e in engine_table.ENGINES if e.backend == "openvino"]:
        try:
            engines[f"openvino {precision}"] = ovb.OpenVinoImageEncoder(
                fp32_path, clip.image_size, precision, threads)
        except BackendUnavailable as exc:
            notes.append(f"openvino {precision}: not measurable here: {exc}")
    return engines


def old_rule(v) -> bool:
    """The rule before issue 19: cosine, batch independence, strict label top-1 >= 99 %."""
    return (v.min_cosine >= DEFAULT_MIN_COSINE and v.batch_cosine >= BATCH_INDEPENDENCE_COSINE
            and v.top1_agreement >= DEFAULT_MIN_TOP1)


def row(candidate, kind, level, batching, v) -> dict:
    return {"candidate": candidate, "kind": kind, "level": level, "batching": batching,
            "accepted": v.ok, "old_rule_accepted": old_rule(v), "min_cosine": v.min_cosine,
            "batch_cosine": v.batch_cosine, "top1_all": v.top1_agreement,
            "labels": v.labels.as_dict() if v.labels else None,
            "images": v.images.as_dict() if v.images else None, "verdict": str(v)}


def machine_busy(since) -> float:
    """Share of all cores busy (any process, this one included) since ``since``."""
    now = _cpu_times()
    busy = (now[0] - since[0]) / max(1, now[1] - since[1])
    return round(busy, 3)


def _cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="engine cache (default: a tmp dir)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    cpu = devices.cpu_identity()
    t0, cpu0, load0 = time.time(), _cpu_times(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        # the model in the cache folder: a second run with --cache reuses its artifacts
        clip = load_clip(write_outlier_vit_b_32(cache / "stress_model"))
        reference = TorchReference(clip, persist_dir=cache)
        notes, rows = [], []
        for name, enc in real_engines(clip, cache, args.threads, reference, notes).items():
            # frame by frame as well where the node runs it so (int8: one frame per call)
            for batching, max_batch in (("batches of 8", 8), ("frame by frame", 1))[
                    :1 if enc.batches else 2]:
                rows.append(row(name, "engine", None, batching,
                                reference.verify(enc, max_batch=max_batch)))
                print(_line(rows[-1]), flush=True)
            enc.close()
        for kind, levels in LEVELS.items():
            for level in levels:
                v = reference.verify(Injected(reference, kind, level))
                rows.append(row("torch fp32 + injected", kind, level, "batches of 8", v))
                print(_line(rows[-1]), flush=True)
    machine = {"cpu": cpu["model"], "isa": cpu["isa"], "cores": devices.cpu_count(),
               "load_average_start": load0, "load_average_end": os.getloadavg()[0],
               "machine_busy_share": machine_busy(cpu0), "seconds": round(time.time() - t0)}
    print(f"\nCPU {machine['cpu']} ({', '.join(machine['isa'])}), {machine['cores']} cores; "
          f"load average {load0:.1f} -> {machine['load_average_end']:.1f}; cores busy "
          f"{machine['machine_busy_share']:.0%} of the run (this benchmark included)")
    for note in notes:
        print("note:", note)
    print("\n" + table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "notes": notes, "rows": rows},
                                        indent=1, default=float) + "\n")
    return 0


def _decision(d) -> str:
    if d is None:
        return "- (refused on cosine first)"
    if not d["powered"]:
        return f"{d['agreement']:.1%} all (no power: {d['decisive']} decisive)"
    return (f"{d['decisive_agreement']:.1%} of {d['decisive']} decisive, {d['ties']} ties, "
            f"noise {d['noise']:.5f}")


def _line(r) -> str:
    what = r["candidate"] if r["kind"] == "engine" else f"{r['kind']} {r['level']}"
    return (f"{what} [{r['batching']}]: {'ACCEPT' if r['accepted'] else 'refuse'} "
            f"(old rule {'accept' if r['old_rule_accepted'] else 'refuse'}): {r['verdict']}")


def _percent(x) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1%}"


def table(rows) -> str:
    out = ["| candidate | level | batching | min cosine | label top-1, all | label top-1 rule |"
           " nearest image rule | verdict | old rule |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        level = "-" if r["level"] is None else f"{r['kind']} {r['level']}"
        out.append(f"| {r['candidate']} | {level} | {r['batching']} | {r['min_cosine']:.5f} | "
                   f"{_percent(r['top1_all'])} | {_decision(r['labels'])} | "
                   f"{_decision(r['images'])} | {'accept' if r['accepted'] else '**refuse**'} | "
                   f"{'accept' if r['old_rule_accepted'] else 'refuse'} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
