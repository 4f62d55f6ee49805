"""Zero-shot classification and landmark scoring on L2-normalised embeddings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

UNKNOWN_LABEL = "unknown"
# What ``score_threshold`` is compared with (see ``threshold_scores``):
#   softmax  - the best label's softmax probability over the labels at the model's logit scale
#              (floor 1/K: the same frame scores lower as labels are added);
#   neglabel - each label's probability against a fixed bank of negative words alone
#              (NegLabel, Jiang et al., ICLR 2024, scored per label): near 1 when the label fits
#              the frame better than every negative word, near 0 when a negative fits better.
#              The other labels do not enter it, so it means the same for 3 or 30 labels.
SCORE_MODES = ("softmax", "neglabel")
DEFAULT_SCORE_MODE = "softmax"
THRESHOLD_MEANINGS = {  # what score_threshold (and ~/label_info's threshold) applies to
    "softmax": "the best label's probability among the labels (its floor is 1/K)",
    "neglabel": "the best label's probability against the negative words alone (other "
                "labels do not count)",
}


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """Top-k labels of one frame, best first.

    When the best probability is under the threshold, ``hypotheses`` starts with
    ``unknown`` (scored with that best probability) followed by the top-k candidates, so a
    consumer reading the first entry sees ``unknown`` and nothing is hidden.
    """

    hypotheses: tuple[LabelScore, ...]

    @property
    def best(self) -> LabelScore:
        return self.hypotheses[0]

    @property
    def is_unknown(self) -> bool:
        return self.best.label == UNKNOWN_LABEL


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def log_sum_exp(z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """log(sum exp(z)) over the last axis in float64, shifted by the row maximum so that large
    logits do not overflow. ``weights`` (K, M) for (N, M) ``z`` gives (N, K): the sum of each
    weight row's entries; a row of zeros gives -inf.

    Without weights it is max + log1p(the others' exp): for a row whose maximum is 0 that keeps
    the tiny excess (about exp(-margin)) instead of rounding 1 + 1e-20 to 1 (``cross_entropy``
    relies on it)."""
    z = np.asarray(z, np.float64)
    top = z.max(axis=-1, keepdims=True)
    e = np.exp(z - top)
    if weights is None:
        np.put_along_axis(e, z.argmax(axis=-1)[..., None], 0.0, axis=-1)  # one maximum out
        return top[..., 0] + np.log1p(e.sum(axis=-1))
    with np.errstate(divide="ignore"):
        return top + np.log(e @ np.asarray(weights, np.float64).T)


def cross_entropy(logits: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels ``truth`` under (N, K) ``logits``.

    Each row is shifted by its truth's logit first, so a confidently right row's loss is
    log1p(exp(-margin)) > 0, not 0.0: on separable logits the loss still falls with the scale,
    and ``fit_temperature`` finds its bound instead of the first scale whose loss rounds to 0."""
    z = np.asarray(logits, np.float64)
    rows, truth = np.arange(len(z)), np.asarray(truth, np.int64)
    return float(np.mean(log_sum_exp(z - z[rows, truth][:, None])))


def mcm_scores(cosines: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """MCM (Ming et al., NeurIPS 2022): the maximum of softmax(cosine / T) over the labels."""
    return softmax(np.asarray(cosines, np.float32) / temperature).max(axis=-1)


def neglabel_probabilities(label_logits: np.ndarray, negative_logits: np.ndarray) -> np.ndarray:
    """(N, K) label logits, (N, M) negative-word logits -> (N, K): each label's softmax
    probability over labels and negatives together. Their row sum is NegLabel's score."""
    joint = np.concatenate([label_logits, negative_logits], axis=-1)
    return softmax(joint)[..., :label_logits.shape[-1]]


def neglabel_label_scores(label_logits: np.ndarray, negative_logits: np.ndarray,
                          mask: np.ndarray | None = None) -> np.ndarray:
    """(N, K) label logits, (N, M) negative-word logits -> (N, K): each label's probability in a
    softmax over itself and its negatives only, exp(z_l) / (exp(z_l) + sum_n exp(z_n)).
    ``mask`` (K, M): which negatives count for which label (default: all for every label).
    Unlike NegLabel's summed share, a label's score does not change when other labels are
    added, which keeps a threshold's meaning from 3 to 30 labels (docs/results/accuracy.md)."""
    z = np.asarray(negative_logits, np.float64)
    negatives = log_sum_exp(z, np.ones((1, z.shape[-1])) if mask is None else mask)
    with np.errstate(over="ignore"):  # no negative: 1; exp overflow: 0
        return (1.0 / (1.0 + np.exp(negatives - np.asarray(label_logits, np.float64)))).astype(
            np.float32)


def neglabel_grouped_scores(label_logits: np.ndarray, negative_logits: np.ndarray,
                            groups: int, seed: int = 0) -> np.ndarray:
    """NegLabel's grouping strategy: the negatives split at random into ``groups`` groups, the
    labels' share computed against each group alone, then averaged (N,). For comparison."""
    order = np.random.default_rng(seed).permutation(negative_logits.shape[-1])
    parts = [neglabel_probabilities(label_logits, negative_logits[..., g]).sum(axis=-1)
             for g in np.array_split(order, groups) if len(g)]
    return np.mean(parts, axis=0)


def neglabel_per_word_scores(label_logits: np.ndarray,
                             negative_logits: np.ndarray) -> np.ndarray:
    """NegLabel normalised by the label count: the labels' mean exp-logit against the
    negatives' mean, mean_l / (mean_l + mean_n) (N,), so K labels weigh as much as M negatives
    whatever K and M. Per label count a monotone function of NegLabel's share (same AUROC)."""
    def log_mean_exp(z):
        return log_sum_exp(z) - np.log(np.shape(z)[-1])
    diff = log_mean_exp(label_logits) - log_mean_exp(negative_logits)
    with np.errstate(over="ignore"):  # exp overflow: a score of 0, as it should be
        return 1.0 / (1.0 + np.exp(-diff))


def mine_negatives(negative_emb: np.ndarray, label_emb: np.ndarray, count: int,
                   percentile: float = 95.0) -> np.ndarray:
    """Indices of the ``count`` bank entries farthest from the labels (NegLabel's NegMining):
    each candidate's distance is the ``percentile`` of its cosines to the labels, negated, so a
    word close to any label (a synonym, the label itself) is never used as a negative. The node
    used it with half the bank until the score study showed the kept share drifting with the
    label count; it now uses ``negative_masks``. Kept for the study's comparison."""
    cos = np.asarray(negative_emb, np.float32) @ np.asarray(label_emb, np.float32).T
    closeness = np.percentile(cos, percentile, axis=1) if cos.shape[1] else np.zeros(len(cos))
    return np.sort(np.argsort(closeness, kind="stable")[:count])


SYNONYM_QUANTILE = 0.9  # a negative nearer a label than 90 % of the bank's words are to their
# nearest other word is taken for a synonym of that label (see negative_masks)


def synonym_radius(negative_emb: np.ndarray, quantile: float = SYNONYM_QUANTILE,
                   chunk: int = 1024) -> float:
    """The cosine beyond which a word counts as a synonym: the ``quantile`` of every bank word's
    cosine to its nearest other word (+inf for a bank of fewer than 2 words). It depends on the
    bank alone (an O(M^2) product, chunked for bounded memory), so callers can keep it."""
    bank = np.asarray(negative_emb, np.float32)
    if len(bank) < 2:
        return float("inf")
    nearest = np.empty(len(bank), np.float32)
    for start in range(0, len(bank), chunk):
        cos = bank[start:start + chunk] @ bank.T
        cos[np.arange(len(cos)), np.arange(start, start + len(cos))] = -np.inf
        nearest[start:start + chunk] = cos.max(axis=1)
    return float(np.quantile(nearest, quantile))


def negative_masks(negative_emb: np.ndarray, label_emb: np.ndarray, same: np.ndarray,
                   radius: float | None = None) -> np.ndarray:
    """(K, M) bool: which bank words are negatives of which label. Every word is, except the
    label itself (``same``, (K, M): the word is the label's name) and its synonyms: words
    nearer to it than ``radius`` (default ``synonym_radius`` of the bank). A synonym would take
    the label's probability on its own frames; any other word is a fair negative however close,
    even another label, so a label's score depends on that label and the bank alone, not on how
    many labels there are. Dropping a share of the bank as labels are added (NegMining,
    ``mine_negatives``) made refusals and acceptances move with the label count. Scale-free:
    it compares cosines of one text encoder."""
    bank = np.asarray(negative_emb, np.float32)
    radius = synonym_radius(bank) if radius is None else radius
    return ~np.asarray(same, bool) & (np.asarray(label_emb, np.float32) @ bank.T <= radius)


def fit_temperature(cosines: np.ndarray, truth: np.ndarray,
                    scales: np.ndarray = np.geomspace(1.0, 400.0, 200)) -> float:
    """The logit scale (1/T) minimising the negative log-likelihood of ``truth`` on labelled
    ``cosines`` (N, K): temperature scaling (Guo et al. 2017) on a small labelled set."""
    cosines = np.asarray(cosines, np.float64)
    truth = np.asarray(truth, np.int64)
    best, best_nll = float(scales[0]), np.inf
    for scale in scales:
        nll = cross_entropy(cosines * scale, truth)
        if nll < best_nll:
            best, best_nll = float(scale), nll
    return best


def zero_shot_logits(image_emb: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """(N, D) x (L, D) -> (N, L) logits = logit_scale * cosine."""
    return logit_scale * (np.asarray(image_emb, np.float32) @ np.asarray(class_emb, np.float32).T)


def top_k_classifications(probs: np.ndarray, labels: Sequence[str], top_k: int,
                          threshold: float,
                          threshold_scores: np.ndarray | None = None) -> list[Classification]:
    """Top-k of ``probs`` (N, K) per frame; ``unknown`` first when the frame's threshold score
    (``threshold_scores``, (N,); default: its best probability) is under ``threshold``, and
    scored with that threshold score."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"score threshold must be in [0, 1], got {threshold}")
    if probs.shape[-1] != len(labels):
        raise ValueError(f"{probs.shape[-1]} scores for {len(labels)} labels")
    k = min(top_k, len(labels))
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    if threshold_scores is None:
        threshold_scores = np.take_along_axis(probs, order[:, :1], axis=-1)[:, 0]
    results = []
    for row, idx, score in zip(probs, order, threshold_scores):
        hyps = tuple(LabelScore(labels[i], float(row[i])) for i in idx)
        if score < threshold:
            hyps = (LabelScore(UNKNOWN_LABEL, float(score)),) + hyps
        results.append(Classification(hyps))
    return results


class ZeroShotClassifier:
    """Labels + their (L, D) text embeddings -> probabilities and top-k classifications."""

    def __init__(self, labels: Sequence[str], class_embeddings: np.ndarray, logit_scale: float):
        if len(labels) != class_embeddings.shape[0]:
            raise ValueError(f"{len(labels)} labels but {class_embeddings.shape[0]} embeddings")
        self.labels = tuple(labels)
        self.class_embeddings = np.asarray(class_embeddings, np.float32)
        self.logit_scale = float(logit_scale)

    def logits(self, image_emb: np.ndarray) -> np.ndarray:
        return zero_shot_logits(image_emb, self.class_embeddings, self.logit_scale)

    def probabilities(self, image_emb: np.ndarray) -> np.ndarray:
        return softmax(self.logits(image_emb))

    def classify(self, image_emb: np.ndarray, top_k: int = 1,
                 threshold: float = 0.0) -> list[Classification]:
        return top_k_classifications(self.probabilities(image_emb), self.labels, top_k, threshold)


def landmark_cosines(image_emb: np.ndarray, landmark_emb: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) raw cosine similarities (LM-Nav uses the raw cosine, not a
    softmax); both sides L2-normalised."""
    return np.asarray(image_emb, np.float32) @ np.asarray(landmark_emb, np.float32).T


def landmark_scores(image_emb: np.ndarray, landmark_emb: np.ndarray,
                    names: Sequence[str]) -> list[tuple[LabelScore, ...]]:
    """Raw cosine similarity of every frame to every landmark, in the given landmark order."""
    if len(names) != landmark_emb.shape[0]:
        raise ValueError(f"{len(names)} landmarks but {landmark_emb.shape[0]} embeddings")
    cos = landmark_cosines(image_emb, landmark_emb)
    return [tuple(LabelScore(n, float(c)) for n, c in zip(names, row)) for row in cos]
