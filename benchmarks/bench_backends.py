"""Image/text backend throughput on a random ViT-B-32 (real FLOPs), measured side by side.

    /work/main/.venv/bin/python benchmarks/bench_backends.py [--rounds 5] [--markdown out.md]

For every backend available here and batch sizes 1 and 4: images/s, ms/image, ratio to torch
eager, min cosine to torch fp32; preprocessing (640x480 frame -> model input) as a fraction of
the default path's inference time; time from a label-set change (20 labels x 7 templates) to new
text embeddings. Configurations are measured in interleaved rounds and each ratio is taken
within a round, then the median over rounds is reported: our machines are shared, so load that
comes and goes hits every configuration alike.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_perception.core.backends import create_image_encoder  # noqa: E402
from clip_perception.core.backends import int8  # noqa: E402
from clip_perception.core.backends import onnx_export  # noqa: E402
from clip_perception.core.backends import onnxruntime_backend as ortb  # noqa: E402
from clip_perception.core.backends import tensorrt_backend as trtb  # noqa: E402
from clip_perception.core.backends.torch_backend import TorchImageEncoder  # noqa: E402
from clip_perception.core.backends.verify import TorchReference  # noqa: E402
from clip_perception.core.model import load_clip  # noqa: E402
from clip_perception.core.preprocess import Preprocessor  # noqa: E402
from clip_perception.core.prompts import DEFAULT_TEMPLATES, PromptEmbeddingCache  # noqa: E402
from clip_perception.core.backends.text_torch import TorchTextEncoder  # noqa: E402
from clip_perception.core.backends.text_onnx import OnnxRuntimeTextEncoder  # noqa: E402
from clip_perception.core.tiny_model import write_random_vit_b_32  # noqa: E402

BATCHES = (1, 4)
DEFAULT = "onnxruntime int8 (default: backend + precision auto)"
LABELS = [f"{adj} {noun}" for adj, noun in zip(
    ["red", "small", "wooden", "open", "broken", "blue", "tall", "round", "metal", "green",
     "old", "plastic", "white", "dark", "empty", "heavy", "soft", "yellow", "glass", "striped"],
    ["door", "cup", "chair", "window", "box", "sign", "plant", "table", "bin", "bottle",
     "bicycle", "bag", "wall", "corridor", "shelf", "cart", "sofa", "cone", "jar", "towel"])]


def synthetic_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """640x480 RGB frames with smooth structure + noise (camera-like content, not white noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        low = rng.uniform(0, 255, (12, 16, 3)).astype(np.uint8)
        big = np.asarray(Image.fromarray(low).resize((640, 480), Image.Resampling.BILINEAR))
        noisy = np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)
        frames.append(noisy)
    return frames


def time_calls(fn, arg, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(arg)
    return (time.perf_counter() - start) / calls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    ap.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure alternatives we tried (spinning, u8 int8)")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for torch and onnxruntime (0: library defaults = all cores); "
                         "1 makes ratios robust to other processes on a shared machine")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("root").setLevel(logging.ERROR)  # ORT quantizer's "consider pre-processing"

    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    t0 = time.perf_counter()
    clip = load_clip(write_random_vit_b_32(tmp / "vit_b_32"))
    cache = tmp / "cache"
    setup = [f"model write+load {time.perf_counter() - t0:.1f} s"]
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    prep = Preprocessor(clip.preprocess)
    frames = synthetic_frames(max(BATCHES))
    inputs = {b: prep(frames[:b]) for b in BATCHES}
    reference = TorchReference(clip)

    encoders: dict[str, object] = {"torch eager fp32": TorchImageEncoder(clip)}
    t0 = time.perf_counter()
    encoders["onnxruntime fp32"] = create_image_encoder(
        clip, "onnxruntime", "fp32", cache_dir=cache, threads=args.threads, reference=reference)
    setup.append(f"ONNX export + verify {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    # Exactly what the node builds with its defaults (backend auto, precision auto).
    default_enc = create_image_encoder(clip, "auto", "auto", cache_dir=cache,
                                       threads=args.threads, reference=reference)
    encoders[DEFAULT] = default_enc
    setup.append(f"default path: {default_enc.selection.summary()}; int8 quantise+verify "
                 f"{time.perf_counter() - t0:.1f} s")
    notes = []
    if args.variants:
        fp32_path = onnx_export.image_onnx_path(clip, cache)
        encoders["onnxruntime fp32, spinning on"] = ortb.OnnxRuntimeImageEncoder(
            fp32_path, clip.image_size, threads=args.threads, spinning=True)
        for label, options in [
                ("onnxruntime int8 (u8 weights)", (("weight_type", "QUInt8"), ("per_channel", False),
                                                   ("reduce_range", False),
                                                   ("op_types_to_quantize", ("MatMul",)))),
                ("onnxruntime int8 (s8, no reduce_range)", (("weight_type", "QInt8"),
                                                            ("per_channel", True),
                                                            ("reduce_range", False),
                                                            ("op_types_to_quantize", ("MatMul",))))]:
            out = cache / f"variant_{abs(hash(options))}.onnx"
            int8.quantize_int8(fp32_path, out, options)
            encoders[label] = ortb.OnnxRuntimeImageEncoder(out, clip.image_size, threads=args.threads,
                                                           precision="int8")
    trt_ok, trt_why = trtb.tensorrt_available("fp16")
    if trt_ok:
        t0 = time.perf_counter()
        encoders["tensorrt fp16"] = trtb.load_or_build_engine(clip, "fp16", 4, cache,
                                                              reference).value
        setup.append(f"TensorRT build+verify {time.perf_counter() - t0:.1f} s")
    else:
        notes.append(f"tensorrt: not measured here: {trt_why}")

    # cosine to torch fp32 on the preprocessed frames and on the fixed verification inputs
    ref4 = encoders["torch eager fp32"].encode_images(inputs[4])
    cosine = {}
    for name, enc in encoders.items():
        a = (enc.encode_images(inputs[4]) * ref4).sum(1).min()
        b = (enc.encode_images(reference.inputs) * reference.embeddings).sum(1).min()
        cosine[name] = float(min(a, b))

    # interleaved throughput rounds
    calls = {1: 3, 4: 1}
    ips = {(n, b): [] for n in encoders for b in BATCHES}
    ratio = {(n, b): [] for n in encoders for b in BATCHES}
    for enc in encoders.values():  # warm-up (first-run allocations, thread pools)
        for b in BATCHES:
            enc.encode_images(inputs[b])
    for _ in range(args.rounds):
        for b in BATCHES:
            round_ips = {}
            for name, enc in encoders.items():
                round_ips[name] = b / time_calls(enc.encode_images, inputs[b], calls[b])
            for name, v in round_ips.items():
                ips[(name, b)].append(v)
                ratio[(name, b)].append(v / round_ips["torch eager fp32"])

    # preprocessing cost per frame, against the default path's inference time per image
    default = DEFAULT
    pre_ms = {b: 1000 * time_calls(prep, frames[:b], 10) / b for b in BATCHES}
    resize_ms = 1000 * time_calls(prep.resize_crop, frames[0], 10)

    # label change: 140 prompts into a cold prompt cache, torch (trimmed) vs onnxruntime
    text = {"torch (trimmed context)": TorchTextEncoder(clip),
            "onnxruntime (trimmed context)": OnnxRuntimeTextEncoder(clip, cache,
                                                                    threads=args.threads)}
    for enc in text.values():
        enc.encode(["warm up"])
    label_s = {n: [] for n in text}
    for _ in range(3):
        for name, enc in text.items():
            pc = PromptEmbeddingCache(enc.encode)
            start = time.perf_counter()
            pc.ensemble(LABELS, DEFAULT_TEMPLATES)
            label_s[name].append(time.perf_counter() - start)

    med = statistics.median
    lines = [f"Random ViT-B-32, 640x480 frames, {torch.get_num_threads()} torch threads, "
             f"onnxruntime {ortb.import_onnxruntime().__version__} with "
             f"{encoders[default].threads} intra-op threads; median of {args.rounds} "
             "interleaved rounds.",
             "", "| backend | batch | images/s | ms/image | vs torch eager | min cosine to torch |",
             "|---|---|---|---|---|---|"]
    for name in encoders:
        for b in BATCHES:
            v = med(ips[(name, b)])
            lines.append(f"| {name} | {b} | {v:.1f} | {1000 / v:.0f} | "
                         f"{med(ratio[(name, b)]):.2f}x | {cosine[name]:.5f} |")
    lines += ["", "| preprocessing (PIL bicubic resize + crop + normalise) | ms/frame | "
                  "fraction of default-path (int8) inference | fraction of fp32 inference |",
              "|---|---|---|---|"]
    for b in BATCHES:
        inf_ms = 1000 / med(ips[(default, b)])
        fp32_ms = 1000 / med(ips[("onnxruntime fp32", b)])
        lines.append(f"| batch {b} | {pre_ms[b]:.1f} | {100 * pre_ms[b] / inf_ms:.1f} % | "
                     f"{100 * pre_ms[b] / fp32_ms:.1f} % |")
    lines.append(f"| (resize+crop alone) | {resize_ms:.1f} | | |")
    lines += ["", f"| label change ({len(LABELS)} labels x {len(DEFAULT_TEMPLATES)} templates, "
                  "cold cache) | seconds (median of 3) | runs |", "|---|---|---|"]
    for name, vals in label_s.items():
        lines.append(f"| {name} | {med(vals):.2f} | {', '.join(f'{v:.2f}' for v in vals)} |")
    lines += ["", "Setup: " + "; ".join(setup),
              f"Load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} cores (other processes skew torch most: see RESULTS.md)"]
    lines += [f"Note: {n}" for n in notes]
    text_out = "\n".join(lines)
    print(text_out)
    if args.markdown:
        args.markdown.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
