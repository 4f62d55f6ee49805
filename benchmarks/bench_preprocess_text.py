"""Preprocessing cost per frame and label-change time, on a random ViT-B-32 (real FLOPs).

    /work/main/.venv/bin/python benchmarks/bench_preprocess_text.py [--threads N]

(Split from bench_backends.py, which now compares the image engines.) Preprocessing: 640x480
frame -> model input, ms/frame, against onnxruntime fp32 inference time per image. Label change:
20 labels x 7 templates into a cold prompt cache, torch vs onnxruntime text towers.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_perception.core.backends import create_image_encoder  # noqa: E402
from clip_perception.core.backends.text_onnx import OnnxRuntimeTextEncoder  # noqa: E402
from clip_perception.core.backends.text_torch import TorchTextEncoder  # noqa: E402
from clip_perception.core.model import load_clip  # noqa: E402
from clip_perception.core.preprocess import Preprocessor  # noqa: E402
from clip_perception.core.prompts import DEFAULT_TEMPLATES, PromptEmbeddingCache  # noqa: E402
from clip_perception.core.tiny_model import write_random_vit_b_32  # noqa: E402

BATCHES = (1, 4)
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
        frames.append(np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8))
    return frames


def time_calls(fn, arg, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(arg)
    return (time.perf_counter() - start) / calls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prep_text_"))
    clip = load_clip(write_random_vit_b_32(tmp / "vit_b_32"))
    cache = tmp / "cache"
    prep = Preprocessor(clip.preprocess)
    frames = synthetic_frames(max(BATCHES))
    enc = create_image_encoder(clip, "onnxruntime", "fp32", cache_dir=cache, threads=args.threads)
    med = statistics.median
    lines = ["| preprocessing (PIL bicubic resize + crop + normalise) | ms/frame | "
             "fraction of onnxruntime fp32 inference |", "|---|---|---|"]
    for b in BATCHES:
        x = prep(frames[:b])
        enc.encode_images(x)
        inf_ms = 1000 * med([time_calls(enc.encode_images, x, 2) for _ in range(3)]) / b
        pre_ms = 1000 * time_calls(prep, frames[:b], 10) / b
        lines.append(f"| batch {b} | {pre_ms:.1f} | {100 * pre_ms / inf_ms:.1f} % |")
    lines.append(f"| (resize+crop alone) | {1000 * time_calls(prep.resize_crop, frames[0], 10):.1f}"
                 " | |")
    text = {"torch (trimmed context)": TorchTextEncoder(clip),
            "onnxruntime (trimmed context)": OnnxRuntimeTextEncoder(clip, cache,
                                                                    threads=args.threads)}
    lines += ["", f"| label change ({len(LABELS)} labels x {len(DEFAULT_TEMPLATES)} templates, "
                  "cold cache) | seconds (median of 3) |", "|---|---|"]
    for name, t in text.items():
        t.encode(["warm up"])
        runs = []
        for _ in range(3):
            cache_ = PromptEmbeddingCache(t.encode)
            start = time.perf_counter()
            cache_.ensemble(LABELS, DEFAULT_TEMPLATES)
            runs.append(time.perf_counter() - start)
        lines.append(f"| {name} | {med(runs):.2f} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
