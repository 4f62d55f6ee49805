"""Training-side throughput on a randomly initialised ViT-B-32 (real FLOPs, no download).

Measured in one run, side by side:
  1. feature extraction without the cache: PIL resize/crop of 640x480 frames, one lighting
     augmentation draw, preprocessing, encoder (the chosen backend) — frames/s;
  2. the same frames again through the feature cache (all hits) — frames/s;
  3. cache lookups at scale: 9,000 stored 512-d features read back — features/s;
  4. head training on 1,000 frames x (1 + 8 augmentations) = 9,000 precomputed 512-d
     features (8 labels, early stopping), timed for real.
Extrapolated (printed as such): the encoder time for 9,000 images from (1)'s measured rate.

    python benchmarks/bench_training.py [--frames 32] [--backend torch] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=32, help="frames encoded for the measured rate")
    p.add_argument("--backend", default="torch")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--train-frames", type=int, default=1000)
    p.add_argument("--augmentations", type=int, default=8)
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from clip_perception.core.backends import create_image_encoder
    from clip_perception.core.model import load_clip
    from clip_perception.core.preprocess import Preprocessor
    from clip_perception.core.embeddings import l2_normalize
    from clip_perception.core.tiny_model import write_random_vit_b_32
    from clip_perception.training.augment import Augmenter, default_pipeline
    from clip_perception.training.data import Frame
    from clip_perception.training.features import FeatureCache, FeatureExtractor, ViewJob
    from clip_perception.training.head import TrainConfig, train_head
    from training_scenes import scene

    import cv2

    tmp = Path(tempfile.mkdtemp(prefix="bench_training_"))
    clip = load_clip(write_random_vit_b_32(tmp / "vit_b_32"))
    encoder = create_image_encoder(clip, backend=args.backend, cache_dir=tmp)
    prep = Preprocessor(clip.preprocess)
    aug = Augmenter(default_pipeline(), draws=1)
    rng = np.random.default_rng(0)
    labels = ["cup", "apple", "door"]
    full = [cv2.resize(scene(labels[i % 3], rng), (640, 480)) for i in range(args.frames)]
    print(f"model: random ViT-B-32 ({clip.embed_dim}-d, {clip.image_size}px), backend "
          f"{encoder.describe()}, torch threads {torch.get_num_threads()}")

    encoder.encode_images(prep([full[0]] * 2))  # warm-up (allocations, ONNX session)

    # 1. no cache: resize/crop + one augmentation draw + encoder
    t0 = time.perf_counter()
    frames = [Frame("bench", "/cam", i, labels[i % 3], f"f{i}", prep.resize_crop(img))
              for i, img in enumerate(full)]
    t_crop = time.perf_counter() - t0
    cache = FeatureCache(tmp / "features.sqlite")
    job = ViewJob(frames, aug.draw_key(1), lambda c, d: aug.apply(c, d, 1))
    t0 = time.perf_counter()
    FeatureExtractor(clip, encoder, cache, batch_size=16, progress=False).embed([job])
    t_encode = time.perf_counter() - t0
    t_aug = time.perf_counter()
    for f in frames:
        aug.apply(f.crop, f.digest, 1)
    t_aug = time.perf_counter() - t_aug
    no_cache_fps = args.frames / (t_crop + t_encode)

    # 2. the same frames again: every view is a cache hit, the encoder is not called
    t0 = time.perf_counter()
    frames2 = [Frame("bench", "/cam", i, labels[i % 3], f"f{i}", prep.resize_crop(img))
               for i, img in enumerate(full)]
    ex = FeatureExtractor(clip, encoder, cache, batch_size=16, progress=False)
    ex.embed([ViewJob(frames2, aug.draw_key(1), lambda c, d: aug.apply(c, d, 1))])
    t_cached = time.perf_counter() - t0
    assert ex.encoded == 0, "second pass should be all cache hits"
    cached_fps = args.frames / t_cached

    # 3. cache lookups at training scale
    n_feat = args.train_frames * (1 + args.augmentations)
    big = FeatureCache(tmp / "big.sqlite")
    vecs = l2_normalize(rng.normal(size=(n_feat, clip.embed_dim)).astype(np.float32))
    keys = [f"k{i}" for i in range(n_feat)]
    t0 = time.perf_counter()
    big.put_many(dict(zip(keys, vecs)))
    t_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = big.get_many(keys, clip.embed_dim)
    t_get = time.perf_counter() - t0
    assert len(got) == n_feat

    # 4. head training on precomputed features (8 labels, clustered so there is something to learn)
    n_labels = 8
    cls = l2_normalize(rng.normal(size=(n_labels, clip.embed_dim)).astype(np.float32))
    centres = l2_normalize(rng.normal(size=(n_labels, clip.embed_dim)).astype(np.float32))
    y = np.tile(np.arange(n_labels), n_feat // n_labels + 1)[:n_feat]
    x = l2_normalize(centres[y] + 0.08 * rng.normal(size=(n_feat, clip.embed_dim)).astype(np.float32))
    vy = np.tile(np.arange(n_labels), 250 // n_labels + 1)[:250]
    vx = l2_normalize(centres[vy] + 0.08 * rng.normal(size=(250, clip.embed_dim)).astype(np.float32))
    t0 = time.perf_counter()
    _, hist = train_head(x, y, vx, vy, cls, clip.logit_scale, TrainConfig(), progress=False)
    t_train = time.perf_counter() - t0

    enc_rate = args.frames / t_encode  # images/s through augmentation + encoder
    crop_per_frame = t_crop / args.frames
    extrap_encode = n_feat / enc_rate + args.train_frames * crop_per_frame
    print()
    print(f"MEASURED  crop 640x480 -> {clip.image_size}px (PIL)     {1e3 * crop_per_frame:8.2f} ms/frame")
    print(f"MEASURED  one augmentation draw            {1e3 * t_aug / args.frames:8.2f} ms/frame")
    print(f"MEASURED  extraction, no cache             {no_cache_fps:8.2f} frames/s  ({args.frames} frames: crop + draw + encode)")
    print(f"MEASURED  extraction, all cache hits       {cached_fps:8.2f} frames/s  (crop + lookup, encoder not called)")
    print(f"          ratio cached / uncached          {cached_fps / no_cache_fps:8.1f} x")
    print(f"MEASURED  cache write {n_feat} features       {t_put:8.2f} s")
    print(f"MEASURED  cache read  {n_feat} features       {t_get:8.2f} s  ({n_feat / t_get:,.0f} features/s)")
    print(f"MEASURED  head training, {n_feat} features  {t_train:8.2f} s  ({hist['epochs_run']} epochs, "
          f"best {hist['best_epoch']}, hidden {TrainConfig().hidden})")
    print(f"EXTRAPOLATED encoder for {args.train_frames} frames x (1+{args.augmentations}) = {n_feat} images "
          f"at {enc_rate:.2f} img/s + crops: {extrap_encode / 60:8.1f} min")
    print(f"EXTRAPOLATED total, first run  (encode + train)     {(extrap_encode + t_train) / 60:8.1f} min")
    print(f"EXTRAPOLATED total, second run (cache + train)      "
          f"{(args.train_frames * crop_per_frame + t_get + t_train) / 60:8.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
