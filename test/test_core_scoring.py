import numpy as np
import pytest

from clip_perception.core.scoring import (UNKNOWN_LABEL, ZeroShotClassifier, cross_entropy,
                                          landmark_scores, log_sum_exp, softmax,
                                          top_k_classifications)
from clip_perception.core.embeddings import l2_normalize


def test_softmax_rows_sum_to_one_and_are_stable():
    p = softmax(np.array([[1000.0, 1000.0, 0.0], [0.0, 1.0, 2.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0, 0] == pytest.approx(0.5)
    assert np.argmax(p[1]) == 2


def test_log_sum_exp_is_stable_and_sums_each_weight_row():
    z = np.array([[1000.0, 1000.0, 0.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(log_sum_exp(z), [1000.0 + np.log(2.0),
                                                np.log(np.exp([0.0, 1.0, 2.0]).sum())])
    rows = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    got = log_sum_exp(z, rows)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[1, 0], np.log(np.exp(0.0) + np.exp(2.0)))
    assert got[0, 1] == -np.inf  # an empty row


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    logits, truth = rng.normal(size=(7, 4)) * 30, rng.integers(0, 4, size=7)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(truth))
    assert cross_entropy(logits, truth) == pytest.approx(float(expected), rel=1e-9)


def test_classifier_ranks_the_matching_label_first():
    rng = np.random.default_rng(0)
    classes = l2_normalize(rng.normal(size=(3, 16)))
    images = l2_normalize(classes[[2, 0]] + 0.05 * rng.normal(size=(2, 16)))
    clf = ZeroShotClassifier(["cup", "apple", "door"], classes, logit_scale=100.0)
    results = clf.classify(images, top_k=2)
    assert [r.best.label for r in results] == ["door", "cup"]
    assert len(results[0].hypotheses) == 2
    assert results[0].hypotheses[0].score >= results[0].hypotheses[1].score
    probs = clf.probabilities(images)
    np.testing.assert_allclose(probs[0, 2], results[0].best.score, rtol=1e-6)


def test_threshold_yields_unknown_first_and_keeps_candidates():
    probs = np.array([[0.4, 0.35, 0.25], [0.9, 0.05, 0.05]])
    results = top_k_classifications(probs, ["a", "b", "c"], top_k=2, threshold=0.5)
    assert results[0].is_unknown
    assert [h.label for h in results[0].hypotheses] == [UNKNOWN_LABEL, "a", "b"]
    assert results[0].best.score == pytest.approx(0.4)
    assert not results[1].is_unknown and results[1].best.label == "a"


def test_top_k_larger_than_label_count_is_clamped():
    results = top_k_classifications(np.array([[0.7, 0.3]]), ["a", "b"], top_k=5, threshold=0.0)
    assert [h.label for h in results[0].hypotheses] == ["a", "b"]


@pytest.mark.parametrize("top_k,threshold", [(0, 0.5), (1, -0.1), (1, 1.5)])
def test_invalid_top_k_or_threshold_is_rejected(top_k, threshold):
    with pytest.raises(ValueError):
        top_k_classifications(np.array([[1.0]]), ["a"], top_k=top_k, threshold=threshold)


def test_landmarks_are_raw_cosines_in_given_order():
    rng = np.random.default_rng(1)
    marks = l2_normalize(rng.normal(size=(3, 8)))
    image = l2_normalize(rng.normal(size=(1, 8)))
    names = ["red door", "stop sign", "a tree"]
    (scores,) = landmark_scores(image, marks, names)
    assert [s.label for s in scores] == names
    np.testing.assert_allclose([s.score for s in scores], (image @ marks.T)[0], rtol=1e-6)


def test_cross_entropy_of_separable_logits_keeps_falling_with_the_scale():
    """1 + exp(-40) rounds to 1: without log1p the loss would be 0.0 from some scale on, and a
    temperature fit would stop at the first such scale instead of its bound."""
    from clip_perception.core.scoring import fit_temperature

    cosines, truth = np.array([[0.30, 0.10], [0.05, 0.35]]), np.array([0, 1])
    assert 0.0 < cross_entropy(cosines * 400, truth) < cross_entropy(cosines * 200, truth)
    assert fit_temperature(cosines, truth) == pytest.approx(400.0)
