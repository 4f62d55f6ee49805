"""Augmentation draws and the on-disk feature cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clip_perception.core.backends import create_image_encoder
from clip_perception.training.augment import (CONDITIONS, Augmenter, condition_key,
                                              default_pipeline, load_pipeline)
from clip_perception.training.data import Frame, TrainingInputError
from clip_perception.training.features import FeatureCache, FeatureExtractor, ViewJob
from training_scenes import CountingEncoder, scene

REPO = Path(__file__).resolve().parents[1]


def _frames(clip, n=6):
    from clip_perception.core.preprocess import Preprocessor

    rng = np.random.default_rng(0)
    prep = Preprocessor(clip.preprocess)
    return [Frame("bag", "/cam", i, "cup", f"digest{i}", prep.resize_crop(scene("cup", rng)))
            for i in range(n)]


def test_draws_are_deterministic_per_frame_and_index():
    aug = Augmenter(default_pipeline(), seed=7, draws=3)
    img = scene("apple", np.random.default_rng(1))
    a = aug.apply(img, "d1", 1)
    assert np.array_equal(a, aug.apply(img, "d1", 1))  # same frame + draw: same pixels
    aug.apply(img, "d2", 5)  # order does not matter
    assert np.array_equal(a, aug.apply(img, "d1", 1))
    others = [aug.apply(img, "d1", k) for k in (2, 3, 4)] + [Augmenter(default_pipeline(), 8).apply(img, "d1", 1)]
    assert all(not np.array_equal(a, o) for o in others)
    assert aug.draw_key(1) != Augmenter(default_pipeline(), seed=8).draw_key(1)


@pytest.mark.filterwarnings("ignore:Transform NoSuchTransform")
def test_shipped_yaml_is_the_default_pipeline_and_round_trips(tmp_path):
    import albumentations as A

    shipped = load_pipeline(REPO / "config" / "lighting_augmentation.yaml")
    assert A.to_dict(shipped) == A.to_dict(default_pipeline())
    aug = Augmenter(shipped)
    saved = aug.save(tmp_path / "aug.json")
    assert A.to_dict(A.load(str(saved), data_format="json")) == A.to_dict(shipped)
    bad = tmp_path / "bad.yaml"
    bad.write_text("transform: {__class_fullname__: NoSuchTransform}\n")
    with pytest.raises(TrainingInputError, match="not an albumentations pipeline"):
        load_pipeline(bad)


def test_conditions_change_pixels_deterministically():
    img = scene("door", np.random.default_rng(2))
    assert list(CONDITIONS) == ["original", "dark", "bright", "warm", "cool", "low_light_noise",
                               "shadow"]
    for name, fn in CONDITIONS.items():
        out = fn(img, "d")
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.array_equal(out, fn(img, "d"))
        assert (name == "original") == np.array_equal(out, img)
    assert CONDITIONS["dark"](img, "d").mean() < img.mean() < CONDITIONS["bright"](img, "d").mean()
    warm, cool = CONDITIONS["warm"](img, "d"), CONDITIONS["cool"](img, "d")
    assert warm[..., 0].mean() > warm[..., 2].mean() and cool[..., 2].mean() > cool[..., 0].mean()
    # a cast shadow: one part of the frame at well under half the light, the rest as it was
    ratio = CONDITIONS["shadow"](img, "d").mean(axis=2) / np.maximum(img.mean(axis=2), 1.0)
    assert 0.2 < (ratio < 0.5).mean() < 0.7 and 0.2 < (ratio > 0.97).mean() < 0.7
    assert not np.array_equal(CONDITIONS["shadow"](img, "d"), CONDITIONS["shadow"](img, "e"))


def test_cache_hit_skips_the_encoder(tiny_clip, tmp_path):
    frames = _frames(tiny_clip)
    aug = Augmenter(default_pipeline(), draws=2)
    jobs = [ViewJob(frames, "original"),
            ViewJob(frames, aug.draw_key(1), lambda c, d: aug.apply(c, d, 1)),
            ViewJob(frames, condition_key("dark"), CONDITIONS["dark"])]
    enc = CountingEncoder(create_image_encoder(tiny_clip, "torch"))
    cache = FeatureCache.for_model(tiny_clip, tmp_path)
    first = FeatureExtractor(tiny_clip, enc, cache, batch_size=4, progress=False).embed(jobs)
    cache.close()
    assert enc.images == 18 and all(f.shape == (6, tiny_clip.embed_dim) for f in first)
    assert not np.allclose(first[0], first[1])  # the draw really changed the image

    cache = FeatureCache.for_model(tiny_clip, tmp_path)  # a new run: new connection, same file
    ex = FeatureExtractor(tiny_clip, enc, cache, batch_size=4, progress=False)
    second = ex.embed(jobs)
    assert enc.images == 18 and ex.hits == 18 and ex.encoded == 0  # encoder not called again
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    ex.embed([ViewJob(frames, aug.draw_key(2), lambda c, d: aug.apply(c, d, 2))])
    assert enc.images == 24  # a new draw is encoded once
    cache.close()


def test_cache_is_keyed_by_model_weights(tiny_clip, tmp_path):
    from clip_perception.core.model import load_clip
    from clip_perception.core.tiny_model import write_tiny_model

    other = load_clip(write_tiny_model(tmp_path / "other", seed=1))
    frames = _frames(tiny_clip, 3)
    for clip, expected in ((tiny_clip, 3), (other, 6)):
        enc_inner = create_image_encoder(clip, "torch")
        cache = FeatureCache(tmp_path / "shared.sqlite")  # even in one file, keys differ
        ex = FeatureExtractor(clip, CountingEncoder(enc_inner), cache, progress=False)
        ex.embed([ViewJob(frames, "original")])
        assert len(cache) == expected and ex.encoded == 3
        cache.close()


def test_cache_is_keyed_by_the_resize_method(tiny_clip, tmp_path):
    # The frames' crops are made before the extractor sees them, from the same digest: a run
    # with the other resize method must not reuse features of the first one's crops.
    frames = _frames(tiny_clip, 3)
    enc = CountingEncoder(create_image_encoder(tiny_clip, "torch"))
    cache = FeatureCache(tmp_path / "shared.sqlite")
    for resize, stored in (("fast", 3), ("exact", 6), ("fast", 6)):
        FeatureExtractor(tiny_clip, enc, cache, progress=False, resize=resize).embed(
            [ViewJob(frames, "original")])
        assert len(cache) == stored
    assert enc.images == 6  # the second fast run was served from the cache
    cache.close()
