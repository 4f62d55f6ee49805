"""Verification on natural photographs: top-1 agreement, batch 1 and max_batch, batch coupling."""
import numpy as np
import pytest

from clip_perception.core.backends.base import ImageEncoder
from clip_perception.core.backends.photo_set import (GENERIC_LABELS, PHOTO_NAMES, VIEWS,
                                                     load_photos, photo_batch)
from clip_perception.core.backends.torch_backend import TorchImageEncoder
from clip_perception.core.backends.verify import (BATCH_INDEPENDENCE_COSINE, TorchReference,
                                                  check_agreement)


def test_photos_load_offline_as_rgb():
    photos = load_photos()
    assert len(photos) == len(PHOTO_NAMES) >= 15
    for img in photos:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.std() > 10  # real content, not a blank placeholder


def test_photo_batch_is_preprocessed_like_frames(tiny_clip):
    batch = photo_batch(tiny_clip.preprocess)
    assert batch.shape == (len(PHOTO_NAMES) * len(VIEWS), 3, 64, 64)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, photo_batch(tiny_clip.preprocess))
    sub = photo_batch(tiny_clip.preprocess, count=16)
    assert sub.shape[0] == 16


class Wrapped(ImageEncoder):
    """The torch encoder with a chosen distortion, to see verification refuse it."""

    name = "wrapped"

    def __init__(self, clip, distort):
        self.inner = TorchImageEncoder(clip)
        self.distort = distort

    def encode_images(self, batch):
        return self.distort(self.inner.encode_images(batch))


@pytest.fixture(scope="module")
def reference(tiny_clip):
    return TorchReference(tiny_clip, max_batch=8)


def test_torch_itself_passes_everything(tiny_clip, reference):
    v = reference.verify(TorchImageEncoder(tiny_clip))
    assert v.ok, v
    assert v.top1_agreement == 1.0 and v.min_cosine > 0.99999
    assert v.batch_cosine >= BATCH_INDEPENDENCE_COSINE
    assert "label top-1 100.0%" in str(v) and "nearest image 100.0%" in str(v)
    assert reference.label_embeddings.shape[0] == len(GENERIC_LABELS)


def test_high_cosine_but_flipped_labels_is_refused(tiny_clip, reference):
    """Cosine alone is not enough: an engine that pushes every photo a little towards one label
    keeps cosine >= 0.999 but changes the decisions users see."""
    labels = reference.label_embeddings
    top = (reference.embeddings @ labels.T).argmax(axis=1)
    target = labels[np.bincount(top, minlength=len(labels)).argmin()]  # a label rarely top-1

    def nudge(out):
        moved = out + 0.03 * target
        return moved / np.linalg.norm(moved, axis=1, keepdims=True)

    v = reference.verify(Wrapped(tiny_clip, nudge))
    assert v.min_cosine >= 0.999
    if v.top1_agreement >= 0.99:
        pytest.fail(f"the nudge did not flip decisions ({v}); make it stronger")
    assert not v.ok and "label top-1" in v.reason


def test_batch_coupled_engine_is_refused(tiny_clip, reference):
    """A per-batch statistic (like one dynamic int8 range over the batch) couples cameras."""
    direction = np.random.default_rng(1).normal(size=tiny_clip.embed_dim).astype(np.float32)
    direction /= np.linalg.norm(direction)

    def couple(out):  # the shift grows with the batch: same frame, other neighbours, other output
        mixed = out + 0.002 * len(out) * direction
        return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)

    v = reference.verify(Wrapped(tiny_clip, couple))
    assert not v.ok and "batch-dependent" in v.reason
    assert v.batch_cosine < BATCH_INDEPENDENCE_COSINE


def test_failure_at_batch_1_only_is_caught(tiny_clip, reference):
    def broken_alone(out):
        return -out if len(out) == 1 else out

    v = reference.verify(Wrapped(tiny_clip, broken_alone))
    assert not v.ok and "at batch 1" in v.reason


def test_check_agreement_with_explicit_inputs():
    class Identity(ImageEncoder):
        def encode_images(self, batch):
            return batch.reshape(len(batch), -1)

    x = np.random.default_rng(0).normal(size=(10, 1, 2, 2)).astype(np.float32)
    v = check_agreement(Identity(), x, x.reshape(10, -1), np.eye(4, dtype=np.float32), 4)
    assert v.ok and v.top1_agreement == 1.0


def _no_torch(*_):
    raise AssertionError("the persisted reference should have been used")


def test_reference_is_persisted_and_reused_exactly(tiny_clip, reference, tmp_path):
    first = TorchReference(tiny_clip, persist_dir=tmp_path)
    np.testing.assert_array_equal(first.embeddings, reference.embeddings)
    assert len(list(tmp_path.glob("reference-*.npz"))) == 1
    again = TorchReference(tiny_clip, persist_dir=tmp_path)
    again.torch_encoder = _no_torch  # a restart must not run torch on the photos again
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    np.testing.assert_array_equal(again.label_embeddings, reference.label_embeddings)


def test_reference_of_other_inputs_is_not_reused(tiny_clip, tmp_path):
    import dataclasses

    first = TorchReference(tiny_clip, persist_dir=tmp_path)
    _ = first.embeddings
    other_clip = dataclasses.replace(tiny_clip, preprocess=dataclasses.replace(
        tiny_clip.preprocess, interpolation="bilinear"))
    other = TorchReference(other_clip, persist_dir=tmp_path)
    assert not np.array_equal(other.inputs, first.inputs)
    assert other.embeddings.shape == first.embeddings.shape
    assert len(list(tmp_path.glob("reference-*.npz"))) == 2  # its own key, computed afresh


def test_torn_reference_file_is_recomputed(tiny_clip, reference, tmp_path, caplog):
    _ = TorchReference(tiny_clip, persist_dir=tmp_path).embeddings
    (path,) = tmp_path.glob("reference-*.npz")
    path.write_bytes(path.read_bytes()[:100])
    again = TorchReference(tiny_clip, persist_dir=tmp_path)
    np.testing.assert_array_equal(again.embeddings, reference.embeddings)
    assert "unreadable" in caplog.text


def test_unwritable_reference_dir_only_costs_the_next_start(tiny_clip, reference, tmp_path,
                                                           caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    ref = TorchReference(tiny_clip, persist_dir=blocker / "model")
    np.testing.assert_array_equal(ref.embeddings, reference.embeddings)
    assert "could not store reference embeddings" in caplog.text
