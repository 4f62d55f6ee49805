"""Zero-shot classification and landmark scoring on L2-normalised embeddings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

UNKNOWN_LABEL = "unknown"


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


def zero_shot_logits(image_emb: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """(N, D) x (L, D) -> (N, L) logits = logit_scale * cosine."""
    return logit_scale * (np.asarray(image_emb, np.float32) @ np.asarray(class_emb, np.float32).T)


def top_k_classifications(probs: np.ndarray, labels: Sequence[str], top_k: int,
                          threshold: float) -> list[Classification]:
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"score threshold must be in [0, 1], got {threshold}")
    if probs.shape[-1] != len(labels):
        raise ValueError(f"{probs.shape[-1]} scores for {len(labels)} labels")
    k = min(top_k, len(labels))
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    results = []
    for row, idx in zip(probs, order):
        hyps = tuple(LabelScore(labels[i], float(row[i])) for i in idx)
        if hyps[0].score < threshold:
            hyps = (LabelScore(UNKNOWN_LABEL, hyps[0].score),) + hyps
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
