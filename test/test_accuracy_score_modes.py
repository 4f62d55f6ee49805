"""Score modes without a model: what score_threshold is compared with (softmax vs neglabel)."""
import numpy as np
import pytest

from clip_perception.core.prompts import PromptEmbeddingCache
from clip_perception.core.scoring import (UNKNOWN_LABEL, fit_temperature, mcm_scores,
                                          mine_negatives, negative_masks, synonym_radius,
                                          neglabel_grouped_scores, neglabel_label_scores,
                                          neglabel_per_word_scores, neglabel_probabilities,
                                          softmax, top_k_classifications)
from clip_perception.core.vocabulary import SpecError, count_prompts
from clip_perception.core.vocabulary.negatives import DEFAULT_NEGATIVE_LABELS
from clip_perception.ros.parameters import PARAMETERS_BY_NAME
from label_sets import fake_text_encoder, label_set, spec


def test_neglabel_probabilities_are_the_joint_softmax_restricted_to_the_labels():
    labels = np.array([[2.0, 1.0, 0.0]])
    negatives = np.array([[3.0, -1.0]])
    probs = neglabel_probabilities(labels, negatives)
    joint = softmax(np.array([[2.0, 1.0, 0.0, 3.0, -1.0]]))
    assert probs == pytest.approx(joint[:, :3])
    assert probs.sum() == pytest.approx(1.0 - joint[0, 3:].sum())
    # the ranking among labels is the softmax's
    assert np.argsort(-probs[0]).tolist() == np.argsort(-softmax(labels)[0]).tolist()


def test_a_label_scores_against_its_negatives_alone_whatever_the_other_labels():
    labels = np.array([[2.0, 1.0, 0.0], [-1.0, 5.0, 0.0]])
    negatives = np.array([[3.0, -1.0], [0.0, 1.0]])
    got = neglabel_label_scores(labels, negatives)
    by_hand = np.exp(labels) / (np.exp(labels) + np.exp(negatives).sum(axis=1, keepdims=True))
    assert got == pytest.approx(by_hand, rel=1e-6)
    # a label's score is the same alone or beside others (NegLabel's summed share is not)
    assert neglabel_label_scores(labels[:, :1], negatives) == pytest.approx(got[:, :1])
    assert neglabel_probabilities(labels[:, :1], negatives).sum(axis=1) != pytest.approx(
        neglabel_probabilities(labels, negatives).sum(axis=1))
    # per-label negatives: label 0 without negative 0 is its softmax against negative 1 alone
    mask = np.array([[False, True], [True, True], [True, True]])
    masked = neglabel_label_scores(labels, negatives, mask)
    assert masked[:, 0] == pytest.approx(1 / (1 + np.exp(negatives[:, 1] - labels[:, 0])))
    assert masked[:, 1:] == pytest.approx(got[:, 1:])
    # huge logits neither overflow nor lose the order; a label without negatives scores 1
    assert neglabel_label_scores(labels * 1000, negatives * 1000)[1] == pytest.approx(
        [0.0, 1.0, 0.0], abs=1e-6)
    assert neglabel_label_scores(labels, negatives, np.zeros((3, 2), bool)) == pytest.approx(1.0)


def test_negatives_of_a_label_are_the_bank_but_the_label_and_its_synonyms():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(40, 64)).astype(np.float32)  # far apart: cosines about 0 +- 0.4
    bank = spread / np.linalg.norm(spread, axis=1, keepdims=True)
    cup = bank[0]
    mug = cup + 0.05 * bank[1]  # a synonym of the label "cup"
    bank = np.vstack([bank, mug / np.linalg.norm(mug)])  # word 40: "mug"
    labels = np.stack([cup, bank[3]])  # "cup" (also bank word 0) and the label of word 3
    same = np.zeros((2, 41), bool)
    same[0, 0] = same[1, 3] = True
    mask = negative_masks(bank, labels, same)
    assert np.flatnonzero(~mask[0]).tolist() == [0, 40]  # neither itself nor "mug"
    # the synonym of "cup" is a fair negative of the other label, and "cup" itself too
    assert np.flatnonzero(~mask[1]).tolist() == [3]
    # a label halfway between two bank words (cosine 0.7, beyond any two bank words') loses
    # both; a label in a new direction, no nearer to any word than they are to each other, none
    between = bank[5] + bank[6]
    other = rng.normal(size=(1, 64)).astype(np.float32)
    got = negative_masks(bank, np.vstack([between / np.linalg.norm(between),
                                          other / np.linalg.norm(other)]), np.zeros((2, 41), bool))
    assert np.flatnonzero(~got[0]).tolist() == [5, 6] and got[1].all()
    # a bank of one word: only the name rule applies
    assert negative_masks(bank[:1], labels, same[:, :1]).tolist() == [[False], [True]]


def test_the_bank_synonym_radius_is_computed_once_per_bank(monkeypatch):
    from clip_perception.core.vocabulary import snapshot

    calls = []
    monkeypatch.setattr(snapshot, "synonym_radius",
                        lambda emb: calls.append(len(emb)) or synonym_radius(emb))
    monkeypatch.setattr(snapshot, "_last_radius", (b"", 0.0))
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(30, 16)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    first = snapshot.bank_synonym_radius(bank)
    assert snapshot.bank_synonym_radius(bank.copy()) == first == synonym_radius(bank)
    assert calls == [30]  # the same bank again (another label set): not recomputed
    other = snapshot.bank_synonym_radius(bank[:20])
    assert calls == [30, 20] and other == synonym_radius(bank[:20])


def test_grouped_neglabel_averages_the_share_against_each_group():
    labels = np.array([[2.0, 0.0]])
    negatives = np.array([[3.0, 1.0, -2.0, 0.5]])
    one = neglabel_grouped_scores(labels, negatives, groups=1)
    assert one == pytest.approx(neglabel_probabilities(labels, negatives).sum(axis=1))
    order = np.random.default_rng(7).permutation(4)
    by_hand = np.mean([neglabel_probabilities(labels, negatives[:, g]).sum()
                       for g in np.array_split(order, 2)])
    assert neglabel_grouped_scores(labels, negatives, 2, seed=7)[0] == pytest.approx(by_hand)
    # fewer negatives per softmax: every group's share is above the ungrouped one
    assert neglabel_grouped_scores(labels, negatives, 2, seed=7)[0] > one[0]


def test_per_word_neglabel_does_not_grow_with_copies_of_the_labels():
    labels = np.array([[2.0, 0.0], [0.0, -1.0]])
    negatives = np.array([[1.0, 0.0, 0.5], [3.0, 2.0, 2.5]])
    got = neglabel_per_word_scores(labels, negatives)
    ml, mn = np.exp(labels).mean(axis=1), np.exp(negatives).mean(axis=1)
    assert got == pytest.approx(ml / (ml + mn))
    twice = np.concatenate([labels, labels], axis=1)  # 2K labels, the same frame
    assert neglabel_per_word_scores(twice, negatives) == pytest.approx(got)
    share = neglabel_probabilities(labels, negatives).sum(axis=1)
    assert (neglabel_probabilities(twice, negatives).sum(axis=1) > share).all()
    # huge logits do not overflow
    assert neglabel_per_word_scores(labels * 1000, negatives * 1000) == pytest.approx([1.0, 0.0])


def test_mining_keeps_the_words_farthest_from_every_label():
    e = np.eye(4, dtype=np.float32)
    labels = e[:1]
    bank = np.stack([e[0], 0.8 * e[0] + 0.6 * e[1], e[2], e[3]])  # itself, near, far, far
    assert mine_negatives(bank, labels, 2).tolist() == [2, 3]
    assert mine_negatives(bank, labels, 3).tolist() == [1, 2, 3]


def test_mcm_and_fitted_temperature():
    cos = np.array([[0.3, 0.2, 0.1]])
    assert mcm_scores(cos, 1.0)[0] == pytest.approx(softmax(cos)[0, 0])
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 400)
    cos = rng.normal(0.2, 0.02, (400, 3))
    cos[np.arange(400), truth] += 0.05  # separable at a scale of about 1 / 0.02
    scale = fit_temperature(cos, truth)
    assert 10 < scale < 400
    assert fit_temperature(cos, truth) == scale


def test_unknown_is_scored_with_the_number_the_threshold_was_compared_with():
    probs = np.array([[0.5, 0.3], [0.6, 0.1]])
    share = probs.sum(axis=1)  # 0.8, 0.7
    a, b = top_k_classifications(probs, ["x", "y"], 2, 0.75, share)
    assert [h.label for h in a.hypotheses] == ["x", "y"]
    assert b.is_unknown and b.best.score == pytest.approx(0.7)
    # without threshold scores: the best probability, as before
    (c,) = top_k_classifications(probs[:1], ["x", "y"], 1, 0.55)
    assert c.is_unknown and c.best.score == pytest.approx(0.5)


def test_score_mode_and_bank_are_validated_with_a_reason():
    with pytest.raises(SpecError) as info:
        spec(score_mode="mcm")
    assert info.value.parameter == "score_mode" and "softmax, neglabel" in str(info.value)
    with pytest.raises(SpecError) as info:
        spec(score_mode="neglabel", negative_labels=["tree", " "])
    assert info.value.parameter == "negative_labels" and "blank" in str(info.value)
    assert "neglabel" in PARAMETERS_BY_NAME["score_mode"].constraints


def test_neglabel_label_set_scores_each_label_against_the_bank_and_thresholds_the_best():
    bank = [f"word{i}" for i in range(10)] + ["cup"]  # "cup" is apple's negative, not its own
    s = spec(score_mode="neglabel", negative_labels=bank, score_threshold=0.5, top_k=2)
    assert count_prompts(s) == 2 + 10  # one template: the labels and the 10 other words
    ls = label_set(s, cache=PromptEmbeddingCache(fake_text_encoder()[0]))
    assert ls.negative_embeddings.shape[0] == 11
    assert not ls.negative_mask[0, 10] and ls.negative_mask[1, 10]  # cup: itself left out
    cup = ls.classifier.class_embeddings[:1]
    far = ls.negative_embeddings[:1]
    frames = np.concatenate([cup, far])
    probs = ls.probabilities(frames)
    logits = ls.classifier.logits(frames)
    negatives = ls.classifier.logit_scale * frames @ ls.negative_embeddings.T
    assert probs[:, 1] == pytest.approx(neglabel_label_scores(logits, negatives)[:, 1])
    assert probs[0, 0] > 0.5 > probs[1].max()
    seen, unseen = ls.classify(frames)
    assert seen.best.label == "cup"
    assert unseen.is_unknown and unseen.best.score == pytest.approx(probs[1].max(), rel=1e-5)
    assert len(unseen.hypotheses) == 3  # unknown, then the top-2 labels still listed
    summary = dict(ls.scoring_summary())
    assert summary["negative words"] == ("a bank of 11 (negative_labels); 10-11 per label, "
                                         "without the label and its synonyms")


def test_a_label_without_negatives_is_refused_and_softmax_has_no_bank():
    with pytest.raises(SpecError, match="negative_labels") as info:
        label_set(spec(score_mode="neglabel", negative_labels=["cup"]))
    assert "no negative word is left for ['cup']" in str(info.value)
    assert label_set(spec()).negative_embeddings is None
    assert len(DEFAULT_NEGATIVE_LABELS) >= 200
    assert count_prompts(spec(score_mode="neglabel")) == 2 + len(DEFAULT_NEGATIVE_LABELS)
    assert UNKNOWN_LABEL not in DEFAULT_NEGATIVE_LABELS


def test_drift_record_reduces_what_accepted_frames_are_confused_by():
    from clip_perception.training.score_drift import DriftRecord, all_kinds
    from clip_perception.training.synthetic_scenes import Scene

    kinds = all_kinds()
    emb = np.eye(len(kinds), dtype=np.float32)  # every kind word its own direction
    red_star, red_heart = kinds.index("red star"), kinds.index("red heart")
    record = DriftRecord(emb)
    labels = ["red star", "blue circle"]
    label_emb = emb[[red_star, kinds.index("blue circle")]]
    x_in = emb[[red_star]]
    x_out = np.stack([emb[red_heart], 0.6 * emb[red_heart] + 0.8 * emb[red_star]])
    heart = Scene("heart", "red", "small", "one", "in the middle", "plain")
    record.add(3, "in", x_in, x_in @ label_emb.T, labels, 7, np.array([0.9]))
    record.add(3, "out", x_out, x_out @ label_emb.T, labels, 7, np.array([0.1, 0.8]),
               [heart, heart])
    got = record.summary(threshold=0.5)[3]
    assert got["negatives_in_use"] == 7
    assert got["best_label_cosine_in"] == pytest.approx(1.0)
    assert got["best_label_cosine_out"] == pytest.approx(0.4)  # (0 + 0.8) / 2
    assert got["best_label_cosine_out_accepted"] == pytest.approx(0.8)
    assert got["accepted_best_label_same_colour"] == 1.0
    assert got["accepted_best_label_same_shape"] == 0.0
    # the second out-of-set frame is nearer "red star" than its own name: the oracle accepts it
    assert got["vocabulary_out_accepted"] == pytest.approx(0.5)
    assert got["vocabulary_in_refused"] == 0.0
    assert record.summary(threshold=0.95)[3]["accepted_best_label_same_colour"] is None


def test_caption_bank_never_names_an_out_of_set_value():
    from clip_perception.training.score_study import OUT_VALUES, caption_bank

    for definition, words in OUT_VALUES.items():
        bank = caption_bank(definition, count=300)
        assert 0 < len(bank) < 300 and len(set(bank)) == len(bank)
        assert not [c for c in bank if any(w in c for w in words)], definition
    assert caption_bank("shape", count=300) == caption_bank("shape", count=300)
