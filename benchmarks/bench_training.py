"""Training-side throughput on a randomly initialised ViT-B-32 (real FLOPs, no download).

Measured in one run, side by side:
  1. feature extraction without the cache: PIL resize/crop of 640x480 frames, one lighting
     augmentation draw, preprocessing, encoder (the chosen backend) — frames/s;
  2. the same frames again through the feature cache (all hits) — frames/s;
  3. cache lookups at scale: 9,000 stored 512-d features read back — features/s;
  4. head training on 1,000 frames x (1 + 8 augmentations) = 9,000 precomputed 512-d
     features (8 labels, early stopping), timed for real, and its epoch time with 1 and 2
     torch threads side by side;
  5. what the three-way split and the condition runs add to a training run, through the real
     pipeline steps on precomputed features of frames in takes (2 lighting conditions):
     the split into takes, the blend grid (one head per variant and blend) against the two
     heads one blend would need, the test evaluation + bootstrap verdict, and the
     leave-one-condition-out heads; plus the images each split layout sends to the encoder.
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
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
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
    # 4b. the same head, a fixed 10 epochs, with 1 and 2 torch threads, interleaved twice
    per_epoch = {1: [], 2: []}
    for threads in (1, 2, 1, 2):
        cfg = TrainConfig(max_epochs=10, patience=10, threads=threads)
        t0 = time.perf_counter()
        train_head(x, y, vx, vy, cls, clip.logit_scale, cfg, progress=False)
        per_epoch[threads].append((time.perf_counter() - t0) / 10)

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
    print(f"MEASURED  head epoch, 1 vs 2 torch threads  {1e3 * min(per_epoch[1]):8.0f} vs "
          f"{1e3 * min(per_epoch[2]):.0f} ms  (best of 2 each, interleaved; the default is 1)")
    print(f"EXTRAPOLATED encoder for {args.train_frames} frames x (1+{args.augmentations}) = {n_feat} images "
          f"at {enc_rate:.2f} img/s + crops: {extrap_encode / 60:8.1f} min")
    print(f"EXTRAPOLATED total, first run  (encode + train)     {(extrap_encode + t_train) / 60:8.1f} min")
    print(f"EXTRAPOLATED total, second run (cache + train)      "
          f"{(args.train_frames * crop_per_frame + t_get + t_train) / 60:8.1f} min")
    added = bench_split_and_conditions(args, clip.embed_dim, clip.logit_scale, enc_rate, rng)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "crop_ms": 1e3 * crop_per_frame, "extraction_fps_no_cache": no_cache_fps,
            "extraction_fps_cached": cached_fps, "head_training_s": t_train,
            "encoder_img_per_s": enc_rate, "head_epoch_s_1_thread": min(per_epoch[1]),
            "head_epoch_s_2_threads": min(per_epoch[2]), **added}, indent=2))
    return 0


def _takes_features(n_frames, labels, conditions, dim, draws, rng):
    """Frames in takes (10 frames each, 1 Hz, one bag per condition) and 'features' with a
    label centre, a take offset and a condition shift, so there is something to learn."""
    from clip_perception.core.embeddings import l2_normalize
    from clip_perception.training.data import Frame

    centres = l2_normalize(rng.normal(size=(len(labels), dim)).astype(np.float32))
    shift = {c: 0.3 * l2_normalize(rng.normal(size=dim).astype(np.float32)) for c in conditions}
    frames, rows, per_take = [], [], 10
    n_takes = max(3, n_frames // (per_take * len(labels) * len(conditions)))
    for ci, cond in enumerate(conditions):
        t, take = (ci + 1) * 10**13, 0
        for _ in range(n_takes):
            for k, label in enumerate(labels):
                offset = 0.3 * l2_normalize(rng.normal(size=dim).astype(np.float32))
                for i in range(per_take):
                    frames.append(Frame(f"bag_{cond}", "/cam", t, label, f"{cond}{t}",
                                        np.zeros((1, 1, 3), np.uint8), take=take, condition=cond))
                    rows.append(centres[k] + offset + shift[cond] + 0.05 * rng.normal(size=dim))
                    t += 10**9
                take += 1
    x = l2_normalize(np.asarray(rows, np.float32))
    aug = [l2_normalize(x + 0.1 * rng.normal(size=x.shape).astype(np.float32)) for _ in range(draws)]
    return frames, x, aug


def bench_split_and_conditions(args, dim, logit_scale, enc_rate, rng) -> dict:
    from clip_perception.core.scoring import ZeroShotClassifier
    from clip_perception.core.embeddings import l2_normalize
    from clip_perception.training import pipeline
    from clip_perception.training.features import FeatureTable
    from clip_perception.training.holdout import leave_one_condition_out
    from clip_perception.training.sources import LoadedFrames

    labels = [f"label{i}" for i in range(8)]
    conditions = ["day", "night"]
    frames, x, aug = _takes_features(args.train_frames * 10 // 6, labels, conditions, dim,
                                     args.augmentations, rng)
    loaded = LoadedFrames(frames, labels)
    spec = pipeline.TrainSpec(output="unused.safetensors", draws=args.augmentations)
    t0 = time.perf_counter()
    split = pipeline.split_step(loaded, spec)
    t_split = time.perf_counter() - t0
    row = {id(f): i for i, f in enumerate(frames)}
    tr, te = split.train_frames, split.frames("test")
    held = split.frames("validation") + te
    syn = {c: FeatureTable(te, l2_normalize(x[[row[id(f)] for f in te]] * 0.7 + 0.3 * rng.normal(
        size=(len(te), dim)).astype(np.float32) / np.sqrt(dim))) for c in pipeline.SYNTHETIC}
    features = pipeline.Features(FeatureTable(frames, x),
                                 [FeatureTable(tr, a[[row[id(f)] for f in tr]]) for a in aug],
                                 [FeatureTable(held, a[[row[id(f)] for f in held]])
                                  for a in aug[:pipeline.VALIDATION_DRAWS]], syn)
    classifier = ZeroShotClassifier(labels, l2_normalize(rng.normal(size=(8, dim)).astype(np.float32)),
                                    logit_scale)
    timed = {}
    for name, grid in (("one_blend", [0.5]), ("grid", list(spec.blend_grid))):
        t0 = time.perf_counter()
        chosen, cands = pipeline.train_step(features, split, labels, classifier,
                                            pipeline.TrainSpec(output="unused", blend_grid=grid), False)
        timed[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    test = pipeline.evaluate_step(features, split, labels, classifier, chosen)
    verdict = pipeline.decide_step(test, split, spec.verdict)
    t_verdict = time.perf_counter() - t0
    t0 = time.perf_counter()
    loco = leave_one_condition_out(frames, labels, split, features.original, features.draws,
                                   features.held_draws, chosen, classifier, spec.head,
                                   spec.gap_s, False)
    t_loco = time.perf_counter() - t0
    n = {s: len(split.frames(s)) for s in split.takes}
    draws, n_syn = args.augmentations, len(pipeline.SYNTHETIC)
    # images to encode: old layout (train/val 75/25, 6 conditions on val, draws on train) vs now
    old_images = int(0.75 * len(frames)) * (1 + draws) + int(0.25 * len(frames)) * (1 + n_syn)
    new_images = (len(frames) + n["train"] * draws + n["test"] * n_syn
                  + (n["validation"] + n["test"]) * min(draws, pipeline.VALIDATION_DRAWS))
    print()
    print(f"SPLIT + CONDITIONS on {len(frames)} frames in takes of 10 ({len(labels)} labels, 2 "
          f"conditions), {draws} draws, 512-d precomputed features")
    print(f"  subsets (frames): {n}, {split.dropped_gap} dropped at the gap")
    print(f"MEASURED  split into takes + three subsets      {t_split:8.3f} s")
    print(f"MEASURED  heads, one blend (plain + augmented)  {timed['one_blend']:8.1f} s")
    print(f"MEASURED  heads, blend grid {list(spec.blend_grid)} x 2     {timed['grid']:8.1f} s "
          f"(chose {chosen.variant} at {chosen.blend:g})")
    print(f"MEASURED  test evaluation + bootstrap verdict   {t_verdict:8.2f} s  "
          f"(gain {verdict['gain']:+.1f}, lower bound {verdict['gain_ci_low']:+.1f})")
    print(f"MEASURED  leave-one-condition-out, 2 heads      {t_loco:8.1f} s  "
          + ", ".join(f"{c}: {v.get('gain', 0):+.1f} pts" for c, v in loco.items()))
    print(f"COUNTED   images to encode, old layout vs now   {old_images} vs {new_images}")
    print(f"EXTRAPOLATED encoder time for that difference   {(new_images - old_images) / enc_rate / 60:+8.1f} min "
          f"at {enc_rate:.2f} img/s")
    return {"split_s": t_split, "heads_one_blend_s": timed["one_blend"], "heads_grid_s": timed["grid"],
            "verdict_s": t_verdict, "loco_s": t_loco, "images_old_layout": old_images,
            "images_now": new_images, "subset_frames": n}


if __name__ == "__main__":
    sys.exit(main())
