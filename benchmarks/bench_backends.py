"""Image engines side by side on the random ViT-B-32 and the outlier stress model.

    /work/main/.venv/bin/python benchmarks/bench_backends.py [--rounds 3] [--json out.json]

For each model (random weights; the same weights with trained-CLIP-like activation outliers):
torch eager, onnxruntime fp32 / int8 (old: dynamic only; new: outliers smoothed first),
OpenVINO fp32 / bf16 (bf16 only where the CPU runs it natively), and what ``backend: auto,
precision: auto`` chose. Columns: img/s at batch 1 and at max_batch, ratio to torch eager
(taken within each interleaved round, median reported), the verification on natural photos
(min cosine, top-1 agreement on the generic label set, batch independence) and whether the
engine passes it. The CPU's ISA is printed: decisions differ between AVX2, AVX-512 and AMX.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_perception.core.backends import create_image_encoder, int8  # noqa: E402
from clip_perception.core.backends import onnx_export  # noqa: E402
from clip_perception.core.backends import openvino_backend as ovb  # noqa: E402
from clip_perception.core.backends import precision_choice as pc  # noqa: E402
from clip_perception.core.backends import tensorrt_backend as trtb  # noqa: E402
from clip_perception.core.backends.base import BackendUnavailable  # noqa: E402
from clip_perception.core.backends.report import BackendAttempt  # noqa: E402
from clip_perception.core.backends.engine_cache import ArtifactRefused  # noqa: E402
from clip_perception.core.backends.torch_backend import TorchImageEncoder  # noqa: E402
from clip_perception.core.backends.verify import TorchReference  # noqa: E402
from clip_perception.core import devices  # noqa: E402
from clip_perception.core.model import load_clip  # noqa: E402
from clip_perception.core.tiny_model import (write_outlier_vit_b_32,  # noqa: E402
                                             write_random_vit_b_32)

TORCH = "torch eager fp32"


def time_calls(fn, arg, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(arg)
    return (time.perf_counter() - start) / calls


def busy_jiffies() -> tuple:
    """(monotonic s, busy jiffies of the machine, jiffies of this process) from /proc."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    own = os.times()
    hz = os.sysconf("SC_CLK_TCK")
    return (time.monotonic(), sum(fields) - fields[3] - fields[4],
            (own.user + own.system + own.children_user + own.children_system) * hz)


def foreign_share(before, after) -> float:
    """Share of all cores used by other processes between two busy_jiffies() readings."""
    wall = (after[0] - before[0]) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall) if wall else 0.0


def skipped(backend, precision, exc, notes, errors) -> None:
    """A row this machine cannot measure: a note when it lacks a capability, else an error."""
    attempt = BackendAttempt(backend, precision, "cpu", "skipped" if getattr(exc, "lacks", "")
                             else "failed", str(exc), getattr(exc, "lacks", ""))
    (errors if attempt.unexplained else notes).append(f"not measured: {attempt}")
    print(f"[bench] {'ERROR ' if attempt.unexplained else ''}not measured: {attempt}",
          file=sys.stderr, flush=True)


def build_engines(clip, cache, threads, reference, notes, errors):
    """name -> encoder for every engine measurable here; a row skipped because this machine
    lacks something goes to ``notes``, any other skip to ``errors`` (the run then fails)."""
    engines = {TORCH: TorchImageEncoder(clip)}
    engines["onnxruntime fp32"] = create_image_encoder(clip, "onnxruntime", "fp32",
                                                       cache_dir=cache, threads=threads)
    fp32_path = onnx_export.ensure_image_onnx(clip, cache)
    for name, options in (("onnxruntime int8 old (dynamic)", int8.DYNAMIC_INT8_OPTIONS),
                          ("onnxruntime int8 smoothed, 7-bit s8 weights", int8.SMOOTHED_S8_OPTIONS),
                          ("onnxruntime int8 default (smoothed, u8 weights)", int8.INT8_OPTIONS)):
        try:  # min_top1 0: measure every engine; the verification columns say who passes
            engines[name] = int8.load_or_quantize_int8(
                clip, fp32_path, cache, threads=threads, reference=reference, options=options,
                min_cosine=0.0, min_top1=0.0).value
        except ArtifactRefused as exc:
            notes.append(f"{name}: {exc}")
    for precision in ovb.OV_PRECISIONS:
        try:
            engines[f"openvino {precision}"] = ovb.OpenVinoImageEncoder(
                fp32_path, clip.image_size, precision, threads)
        except BackendUnavailable as exc:
            skipped("openvino", precision, exc, notes, errors)
    try:
        trtb.preflight("fp16")
    except BackendUnavailable as exc:
        skipped("tensorrt", "fp16", exc, notes, errors)
    return engines


def measure_model(label, clip, args, cache):
    notes, setup, errors = [], [], []
    t0 = time.perf_counter()
    reference = TorchReference(clip, max_batch=args.max_batch)
    _ = (reference.embeddings, reference.label_embeddings)  # computed once, timed here
    setup.append(f"torch reference on {len(reference.inputs)} photo views "
                 f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    engines = build_engines(clip, cache, args.threads, reference, notes, errors)
    setup.append(f"exports/quantisation {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    auto = create_image_encoder(clip, "auto", "auto", cache_dir=cache, threads=args.threads,
                                max_batch=args.max_batch, reference=reference)
    chosen = [a for a in auto.selection.attempts if a.outcome == "chosen"][0]
    for a in auto.selection.attempts:
        if a.outcome in ("skipped", "failed", "refused"):
            print(f"[bench] auto: {'ERROR ' if a.unexplained else ''}{a}", file=sys.stderr,
                  flush=True)
    errors += [f"auto: {a}" for a in auto.selection.unexplained]
    setup.append(f"auto decision {time.perf_counter() - t0:.1f} s")
    # auto builds int8 with the default recipe: of the int8 rows, that is the "default" one
    auto_name = next((n for n, e in engines.items() if (e.name, e.precision) ==
                      (auto.name, auto.precision) and (e.precision != "int8" or "default" in n)),
                     None)
    auto.close()

    verdict = {name: reference.verify(enc) for name, enc in engines.items()}
    batches = (1, args.max_batch)
    x = {b: reference.inputs[:b] for b in batches}
    calls = {1: 3, args.max_batch: 1}
    ips = {(n, b): [] for n in engines for b in batches}
    ratio = {(n, b): [] for n in engines for b in batches}
    for enc in engines.values():
        for b in batches:
            enc.encode_images(x[b])
    for _ in range(args.rounds):
        for b in batches:
            now = {n: b / time_calls(e.encode_images, x[b], calls[b]) for n, e in engines.items()}
            for n, v in now.items():
                ips[(n, b)].append(v)
                ratio[(n, b)].append(v / now[TORCH])
    med = statistics.median
    rows = []
    for n in engines:
        v = verdict[n]
        rows.append({"model": label, "engine": n, "auto_choice": n == auto_name,
                     "cpu": args.cpu["model"], "isa": devices.isa_label(args.cpu["isa"]),
                     "ips_b1": med(ips[(n, 1)]), "ips_bmax": med(ips[(n, args.max_batch)]),
                     "vs_torch_b1": med(ratio[(n, 1)]),
                     "vs_torch_bmax": med(ratio[(n, args.max_batch)]),
                     "min_cosine": v.min_cosine, "top1_agreement": v.top1_agreement,
                     "batch_cosine": v.batch_cosine, "passes": v.ok,
                     "refusal": v.reason})
    return {"rows": rows, "notes": notes, "errors": errors, "setup": setup, "auto": str(chosen),
            "auto_attempts": [str(a) for a in auto.selection.attempts]}


def _or_dash(value, fmt) -> str:
    """'-' where verification stopped before measuring this (e.g. cosine already failed)."""
    return "-" if value != value else format(value, fmt)


def markdown(result, max_batch) -> str:
    lines = [f"| CPU | ISA | model | engine | img/s b1 | img/s b{max_batch} | vs torch b1 | "
             f"vs torch b{max_batch} | min cosine | top-1 agree | batch-indep. cosine | "
             "verified |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in result["models"].values():
        for r in m["rows"]:
            name = f"**{r['engine']}** (auto)" if r["auto_choice"] else r["engine"]
            lines.append(f"| {r['cpu']} | {r['isa']} | {r['model']} | {name} | "
                         f"{r['ips_b1']:.1f} | {r['ips_bmax']:.1f} | "
                         f"{r['vs_torch_b1']:.2f}x | {r['vs_torch_bmax']:.2f}x | "
                         f"{r['min_cosine']:.5f} | {_or_dash(r['top1_agreement'], '.1%')} | "
                         f"{_or_dash(r['batch_cosine'], '.6f')} | "
                         f"{'yes' if r['passes'] else 'no'} |")
    lines.append("")
    for label, m in result["models"].items():
        lines.append(f"- {label}: auto chose: {m['auto']}")
        lines += [f"  - {n}" for n in m["notes"]]
        lines += [f"  - ERROR (a skip that is not a missing capability): {e}" for e in m["errors"]]
        lines.append(f"  - setup: {'; '.join(m['setup'])}")
    cpu = result["cpu"]
    lines.append(f"- CPU: {cpu['model']}, ISA flags: {', '.join(cpu['isa']) or 'none of interest'}; "
                 f"{result['cores']} cores; threads {result['threads'] or 'all'}; load average "
                 f"before/after {result['load'][0]:.2f}/{result['load'][1]:.2f}; other processes "
                 f"used {result['foreign_cpu']:.0%} of the cores during the run (/proc/stat)")
    lines.append(f"- libraries: {result['libraries']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    ap.add_argument("--models", nargs="+", default=["random", "stress"],
                    choices=["random", "stress"])
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("root").setLevel(logging.ERROR)  # ORT quantizer's "consider pre-processing"
    logging.getLogger("clip_perception").setLevel(logging.ERROR)  # refusals are in the table
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    busy_before = busy_jiffies()
    tmp = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    writers = {"random": write_random_vit_b_32, "stress": write_outlier_vit_b_32}
    args.cpu = devices.cpu_identity()
    result = {"cpu": args.cpu, "isa": devices.isa_label(args.cpu["isa"]),
              "libraries": pc.library_versions(),
              "cores": os.cpu_count(), "threads": args.threads, "models": {}}
    for label in args.models:
        clip = load_clip(writers[label](tmp / label))
        result["models"][label] = measure_model(label, clip, args, tmp / "cache")
        print(f"[bench] {label} done", file=sys.stderr, flush=True)
    result["load"] = [load_before, os.getloadavg()[0]]
    result["foreign_cpu"] = foreign_share(busy_before, busy_jiffies())
    text = markdown(result, args.max_batch)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    errors = [e for m in result["models"].values() for e in m["errors"]]
    for e in errors:
        print(f"[bench] ERROR: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
