"""The decision rule (agreement.py) on constructed embeddings and scores: ties forgiven, real
errors refused, the tie threshold measured from the engine, and the strict fallback without power.
Everything here is built from seeded numbers, so the verdicts are the same on every CPU."""
import numpy as np
import pytest

from clip_perception.core.backends.agreement import (IMAGES, LABELS, REQUIRED_POWER,
                                                     allowed_errors, image_agreement, judge,
                                                     label_agreement, refusal_power)
from clip_perception.core.backends.base import ImageEncoder
from clip_perception.core.backends.frame_recheck import PASSED, SWITCHED, RecheckingImageEncoder
from clip_perception.core.backends.verify import check_agreement

D, K, N = 64, 8, 128


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def photo_set(margins, seed=0):
    """(N, D) reference embeddings whose label scores have the given top-2 ``margins`` (label k
    is basis vector k) and whose nearest other row is clearly their pair partner."""
    rng = np.random.default_rng(seed)
    n = len(margins)
    pair_dirs = unit(rng.standard_normal((n // 2 + 1, D - K)))
    rows = np.zeros((n, D))
    for i, m in enumerate(margins):
        rows[i, i % K] = 0.3
        rows[i, (i + 1) % K] = 0.3 - m
        rows[i, K:] = 0.9 * pair_dirs[i // 2] + 0.05 * unit(rng.standard_normal(D - K))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / norms).astype(np.float32), np.eye(K, D, dtype=np.float32)


def with_noise(ref, sigma, seed=1):
    return unit(ref + sigma * np.random.default_rng(seed).standard_normal(ref.shape)
                ).astype(np.float32)


def flip(emb, rows, by=1e-5):
    """Row i's second label (reference order) made to beat its first by ``by``."""
    out = emb.copy()
    for i in rows:
        top, second = i % K, (i + 1) % K
        high = max(out[i, top], out[i, second])
        out[i, second], out[i, top] = high, high - by
    return out


NEAR_TIES = list(range(0, N, 10))  # 13 rows whose two best labels are 1e-5 apart


def margins(near=1e-5, decisive=0.01):
    return [near if i in NEAR_TIES else decisive for i in range(N)]


def test_disagreements_on_near_ties_are_forgiven_where_the_strict_rule_refuses():
    ref, labels = photo_set(margins())
    cand = flip(with_noise(ref, 1e-3), NEAR_TIES)  # every near tie goes the other way
    a = label_agreement(cand, ref, labels, 0.99)
    assert a.agreement == pytest.approx(1 - len(NEAR_TIES) / N)  # 89.8 %: strict refuses
    assert a.powered and a.errors == 0 and a.ties == len(NEAR_TIES)
    assert a.decisive == N - len(NEAR_TIES) and a.ok
    assert "ties forgiven: 13" in str(a) and a.task == LABELS


def test_disagreements_on_decisive_photos_are_refused():
    ref, labels = photo_set(margins())
    wrong = [5, 33, 77]  # margins 0.01, well above the engine's noise
    cand = flip(flip(with_noise(ref, 1e-3), NEAR_TIES), wrong, by=0.01)
    a = label_agreement(cand, ref, labels, 0.99)
    assert a.powered and a.errors == 3 > allowed_errors(a.decisive, 0.99)
    assert not a.ok and a.ties == len(NEAR_TIES)


def test_the_tie_threshold_is_the_engines_own_noise():
    """One disagreement at reference margin 1e-3 among 64 decisive photos: a tie for an engine
    whose scores move by more than that, an error for an engine ten times more exact."""
    rng = np.random.default_rng(3)
    ref = rng.uniform(0, 0.02, (64, K))
    ref[:, 0] += 0.05  # label 0 best by >= 0.03 everywhere ...
    ref[0, 1] = ref[0, 0] - 1e-3  # ... but on photo 0, where label 1 is 1e-3 behind
    verdicts = {}
    for sigma in (2e-3, 1e-4):
        cand = ref + sigma * rng.standard_normal(ref.shape)
        cand[0, [0, 1]] = ref[0, [1, 0]]  # photo 0 flips
        a = judge(LABELS, ref, cand, 0.99)
        assert a.powered and a.agreement == pytest.approx(63 / 64)
        verdicts[sigma] = a
    assert verdicts[2e-3].noise > 1e-3 > verdicts[1e-4].noise
    assert verdicts[2e-3].ok and verdicts[2e-3].ties == 1
    assert not verdicts[1e-4].ok and verdicts[1e-4].errors == 1


def test_a_bias_towards_one_label_is_an_error_not_noise():
    """Every photo pushed by 0.015 towards label 3: it overtakes label 3's rivals where they lead
    by 0.01. Measured as noise the push would excuse itself; it is the engine's bias, so those
    photos, decisive against the engine's remaining noise, are errors."""
    target = 3
    rows_behind = [i for i in range(N) if (i + 1) % K == target]  # label 3 second, 0.01 behind
    ref, labels = photo_set([0.01 if i in rows_behind else 0.05 for i in range(N)])
    pushed = with_noise(ref, 1e-3)
    pushed[:, target] += 0.015
    a = label_agreement(unit(pushed), ref, labels, 0.99)
    assert a.agreement == pytest.approx(1 - len(rows_behind) / N)
    assert a.noise < 0.01 and a.powered
    assert a.errors == len(rows_behind) and not a.ok


def test_too_few_decisive_photos_fall_back_to_the_strict_rule():
    """An engine whose noise exceeds most margins leaves no power: then every photo counts."""
    ref, labels = photo_set([2e-3] * N)
    cand = with_noise(ref, 2e-2)
    a = label_agreement(cand, ref, labels, 0.99)
    assert not a.powered and a.power < REQUIRED_POWER
    assert a.agreement < 0.99 and not a.ok
    assert "strict rule" in str(a) and "too few" in str(a)


def test_without_power_an_engine_agreeing_everywhere_still_passes():
    rng = np.random.default_rng(4)
    ref = rng.uniform(0, 1, (N, K))
    chosen = ref.argmax(axis=1)
    cand = ref - 0.5 * (np.arange(K) != chosen[:, None])  # big moves that never flip
    a = judge(LABELS, ref, cand, 0.99)
    assert not a.powered and a.agreement == 1.0 and a.ok


def test_refusal_power_is_the_binomial_tail():
    assert refusal_power(0, 0.99) == 0.0
    # no error allowed below 100 rows: power = 1 - 0.9 ** n
    assert refusal_power(21, 0.99) == pytest.approx(1 - 0.9 ** 21)
    assert refusal_power(21, 0.99) < REQUIRED_POWER <= refusal_power(22, 0.99)
    # one error allowed at 100 rows
    assert allowed_errors(100, 0.99) == 1 and allowed_errors(99, 0.99) == 0
    assert refusal_power(100, 0.99) == pytest.approx(1 - 0.9 ** 100 - 100 * 0.1 * 0.9 ** 99)
    assert refusal_power(50, 0.0) == 0.0  # a rule that allows everything has no power


def test_nearest_image_excludes_the_photo_itself_and_forgives_ties():
    ref, _ = photo_set(margins())
    a = image_agreement(with_noise(ref, 1e-3), ref, 0.99)
    assert a.task == IMAGES and a.photos == N and a.agreement == 1.0 and a.powered and a.ok
    # two exact duplicates of row 0: which one is nearest is a tie of the reference itself
    dup = np.concatenate([ref, ref[:1], ref[:1]])
    cand = with_noise(dup, 1e-3)
    b = image_agreement(cand, dup, 0.99)
    assert b.errors == 0 and b.ok


def test_a_swapped_nearest_image_is_refused():
    ref, _ = photo_set(margins())
    cand = with_noise(ref, 1e-3)
    cand[[2, 40]] = cand[[40, 2]]  # two photos' embeddings exchanged: wrong neighbours
    a = image_agreement(cand, ref, 0.99)
    assert a.errors >= 2 and not a.ok


def test_nearest_image_in_a_fixed_gallery():
    ref, _ = photo_set(margins())
    gallery, queries = ref[::2], ref[1::2]  # each query's pair partner is in the gallery
    assert image_agreement(with_noise(queries, 1e-3), queries, 0.99, gallery).ok
    wrong = with_noise(queries[::-1], 1e-3)
    assert not image_agreement(wrong, queries, 0.99, gallery).ok


class Table(ImageEncoder):
    """Encodes a row index (the input's first value) to a fixed embedding."""

    def __init__(self, embeddings):
        self.embeddings = embeddings

    def encode_images(self, batch):
        return self.embeddings[batch[:, 0, 0, 0].astype(int)]


def test_check_agreement_forgives_ties_and_names_both_decisions():
    ref, labels = photo_set(margins())
    inputs = np.arange(N, dtype=np.float32).reshape(N, 1, 1, 1)
    cand = flip(with_noise(ref, 1e-4), NEAR_TIES)
    v = check_agreement(Table(cand), inputs, ref, labels, 8)
    assert v.ok, v
    assert v.top1_agreement < 0.99  # the strict figure is still reported
    assert v.labels.ties == len(NEAR_TIES) and v.images.task == IMAGES and v.images.ok
    assert "ties forgiven" in str(v) and "nearest image" in str(v)
    broken = flip(cand, [5, 33, 77], by=0.01)
    v = check_agreement(Table(broken), inputs, ref, labels, 8)
    assert not v.ok and "label top-1" in v.reason and v.labels.errors == 3


def test_scores_of_other_shapes_are_an_error():
    with pytest.raises(ValueError, match="scores must be"):
        judge(LABELS, np.zeros((4, 3)), np.zeros((4, 2)), 0.99)


class FakeReference:
    """What RecheckingImageEncoder reads of a TorchReference: fp32 itself, the label embeddings
    and the photo set's fp32 embeddings (the gallery of the frames' nearest image)."""

    def __init__(self, ref, labels, gallery):
        self.ref, self.label_embeddings, self.embeddings = ref, labels, gallery

    def torch_encoder(self):
        return Table(self.ref)


@pytest.mark.parametrize("wrong, state", [([], PASSED), ([5, 33, 77], SWITCHED)])
def test_frame_recheck_judges_by_the_same_rule(wrong, state):
    ref, labels = photo_set(margins())
    gallery, _ = photo_set(margins(), seed=5)
    cand = flip(flip(with_noise(ref, 1e-4), NEAR_TIES), wrong, by=0.01)
    fp32 = Table(ref)
    enc = RecheckingImageEncoder(Table(cand), FakeReference(ref, labels, gallery),
                                 lambda: fp32, frames=N, max_batch=8)
    frames = np.arange(N, dtype=np.float32).reshape(N, 1, 1, 1)
    for i in range(0, N, 8):
        enc.encode_images(frames[i:i + 8])
    assert enc.wait(30) == state
    reason = enc.recheck().reason
    assert "ties forgiven: 13" in reason  # the near ties, in either verdict
    # passed: both decisions named; switched: the one that failed
    assert ("nearest image" in reason) == (not wrong)
    assert (enc._current is fp32) == bool(wrong)
