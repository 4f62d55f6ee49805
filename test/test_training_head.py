"""The torch head is the numpy AdapterHead; training improves it; early stopping keeps the best."""
from __future__ import annotations

import numpy as np
import pytest

from clip_perception.core.adapter import AdapterHead
from clip_perception.core.scoring import cross_entropy, zero_shot_logits
from clip_perception.core.embeddings import l2_normalize
from clip_perception.training.head import TrainConfig, make_head_module, train_head


def _data(rng, n, d=16, labels=3):
    cls = l2_normalize(rng.normal(size=(labels, d)).astype(np.float32))
    x = l2_normalize(rng.normal(size=(n, d)).astype(np.float32))
    return cls, x


def test_untrained_head_equals_zero_shot():
    import torch

    rng = np.random.default_rng(0)
    cls, x = _data(rng, 50)
    head = make_head_module(cls, 14.3, hidden=8)
    with torch.no_grad():
        got = head(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, zero_shot_logits(x, cls, 14.3), atol=1e-5)
    numpy_head = AdapterHead(head.numpy_tensors(), {"labels": ["a", "b", "c"]})
    np.testing.assert_allclose(numpy_head.head_logits(x), zero_shot_logits(x, cls, 14.3), atol=1e-5)


def test_torch_forward_matches_numpy_adapter_head():
    import torch

    rng = np.random.default_rng(1)
    cls, x = _data(rng, 64, d=32, labels=5)
    head = make_head_module(cls, 100.0, hidden=24)
    with torch.no_grad():  # every tensor non-trivial, so each term of the forward is exercised
        for p in head.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    with torch.no_grad():
        ref = head(torch.from_numpy(x)).numpy()
    numpy_head = AdapterHead(head.numpy_tensors(), {"labels": list("abcde")})
    got = numpy_head.head_logits(x)
    assert not np.allclose(got, zero_shot_logits(x, cls, 100.0), atol=1e-2)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def _separable(rng, n, cls):
    y = rng.integers(0, cls.shape[0], n)
    # each class is a cluster around a direction unrelated to its text embedding
    centres = l2_normalize(rng.normal(size=cls.shape).astype(np.float32))
    x = l2_normalize(centres[y] + 0.3 * rng.normal(size=(n, cls.shape[1])).astype(np.float32))
    return x, y


def test_training_beats_zero_shot_and_stops_early():
    rng = np.random.default_rng(2)
    cls, _ = _data(rng, 1)
    state = np.random.default_rng(3)
    x, y = _separable(state, 400, cls)
    tx, ty, vx, vy = x[:300], y[:300], x[300:], y[300:]
    head, hist = train_head(tx, ty, vx, vy, cls, 14.3,
                            TrainConfig(hidden=32, lr=1e-2, max_epochs=300, patience=5), progress=False)
    zs = (np.argmax(zero_shot_logits(vx, cls, 14.3), 1) == vy).mean()
    acc = (np.argmax(AdapterHead(head.numpy_tensors(), {"labels": list("abc")}).head_logits(vx), 1)
           == vy).mean()
    assert acc > 0.9 > zs + 0.3
    assert hist["epochs_run"] < 300  # patience stopped it
    assert hist["best_val_loss"] == min(hist["val_loss"]) < hist["val_loss"][0]


def test_no_improvement_keeps_the_untrained_head():
    import torch

    rng = np.random.default_rng(4)
    cls, x = _data(rng, 60)
    y = rng.integers(0, 3, 60)
    head, hist = train_head(x[:40], y[:40], x[40:], y[40:], cls, 14.3,
                            TrainConfig(hidden=8, lr=0.0, max_epochs=10, patience=3), progress=False)
    assert hist["best_epoch"] == 0 and hist["epochs_run"] == 3
    with torch.no_grad():
        np.testing.assert_allclose(head(torch.from_numpy(x)).numpy(),
                                   zero_shot_logits(x, cls, 14.3), atol=1e-5)


def test_blend_zero_is_rejected_for_training():
    from clip_perception.training.data import TrainingInputError

    rng = np.random.default_rng(5)
    cls, x = _data(rng, 10)
    with pytest.raises(TrainingInputError, match="blend"):
        train_head(x, np.zeros(10, int), x, np.zeros(10, int), cls, 1.0, TrainConfig(blend=0.0))


def test_weight_decay_pulls_toward_the_zero_shot_start_not_toward_zero():
    """A strong pull keeps the classifier at the text embeddings (decay toward zero would
    shrink them); a weak one lets the head move away and learn."""
    rng = np.random.default_rng(6)
    cls, _ = _data(rng, 1)
    x, y = _separable(np.random.default_rng(7), 300, cls)

    def trained(decay):
        head, _ = train_head(x[:200], y[:200], x[200:], y[200:], cls, 14.3,
                             TrainConfig(hidden=16, lr=1e-2, max_epochs=60, patience=60,
                                         weight_decay=decay, blend=1.0), progress=False)
        return head.numpy_tensors()["classifier.weight"]

    strong, weak = trained(100.0), trained(0.0)
    assert np.abs(strong - cls).max() < 0.05
    np.testing.assert_allclose(np.linalg.norm(strong, axis=1), 1.0, atol=0.05)
    assert np.abs(weak - cls).max() > 4 * np.abs(strong - cls).max()


def test_the_augmented_head_early_stops_on_augmented_validation_and_all_compare_on_recorded(
        monkeypatch):
    """The augmented head stops on the validation frames as recorded and under augmentation
    (on recorded ones alone it stopped at epoch 0 whenever they held no light like the
    augmentations); every candidate is then scored on the recorded ones, so they compare."""
    from clip_perception.core.scoring import ZeroShotClassifier
    from clip_perception.training import head_selection as hs

    rng = np.random.default_rng(5)
    cls, _ = _data(rng, 1)
    x, y = _separable(rng, 90, cls)
    shift = l2_normalize(rng.normal(size=(1, cls.shape[1])).astype(np.float32))
    dark = lambda v: l2_normalize(v + 1.5 * shift)  # noqa: E731 (a light the recording lacks)
    data = hs.TrainingData(x[:60], y[:60], [dark(x[:60]), dark(x[:60])], x[60:], y[60:],
                           [dark(x[60:])])
    stops = {}
    real = hs.train_head

    def spy(tx, ty, vx, vy, *args, **kwargs):
        stops[args[-1].split(",")[0]] = (len(tx), len(vx))
        return real(tx, ty, vx, vy, *args, **kwargs)

    monkeypatch.setattr(hs, "train_head", spy)
    classifier = ZeroShotClassifier(["a", "b", "c"], cls, 14.3)
    got = hs.train_candidates(data, classifier, TrainConfig(hidden=8, max_epochs=30), [0.5],
                              progress=False)
    assert stops == {hs.PLAIN: (60, 30), hs.AUGMENTED: (180, 60)}
    for c in got:
        assert c.val_loss == pytest.approx(cross_entropy(c.model.logits(x[60:]), y[60:]))
    plain = next(c for c in got if c.variant == hs.PLAIN)
    assert plain.val_loss == pytest.approx(plain.history["best_val_loss"], rel=1e-4)
    with pytest.raises(Exception, match="no head to train"):
        hs.train_candidates(hs.TrainingData(x[:60], y[:60], [], x[60:], y[60:]), classifier,
                            TrainConfig(hidden=8, max_epochs=2), [0.5], [hs.AUGMENTED], False)
