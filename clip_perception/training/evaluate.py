"""Accuracy (plain and class-balanced) per condition and confusion matrices, for logits
functions: a ``core.scoring.ZeroShotClassifier`` or a ``BlendedHead``, exactly as the node
computes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..core.adapter import AdapterHead
from ..core.scoring import ZeroShotClassifier

LogitsFn = Callable[[np.ndarray], np.ndarray]  # (N, D) embeddings -> (N, L) logits


@dataclass
class BlendedHead:
    """The node's logits with an adapter: (1 - blend) * zero-shot + blend * head."""

    head: AdapterHead
    classifier: ZeroShotClassifier
    blend: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.blended_logits(x, self.classifier.logits(x), self.blend)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """rows = true label, columns = predicted label."""
    m = np.zeros((n_labels, n_labels), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the labels present of the share of their frames predicted right, so a label
    recorded for longer does not weigh more."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(y_true)
    if len(present) == 0:
        return float("nan")
    return float(np.mean([(y_pred[y_true == k] == k).mean() for k in present]))


def predict(fn: LogitsFn, x: np.ndarray) -> np.ndarray:
    return np.argmax(fn(x), axis=-1)


def evaluate_methods(features: Mapping[str, np.ndarray], y: np.ndarray, labels: Sequence[str],
                     methods: Mapping[str, LogitsFn]) -> dict:
    """``features``: condition -> (N, D) embeddings of the same N frames; ``methods``: name ->
    logits function. Returns accuracy and class-balanced accuracy per method and condition
    (plus their mean), per-label accuracy and a confusion matrix per method (summed over
    conditions)."""
    y = np.asarray(y, np.int64)
    n_labels = len(labels)
    out = {"labels": list(labels), "conditions": list(features), "n_frames": int(len(y)),
           "frames_per_label": {label: int((y == i).sum()) for i, label in enumerate(labels)},
           "accuracy": {}, "balanced_accuracy": {}, "per_label_accuracy": {}, "confusion": {}}
    for name, fn in methods.items():
        acc, bal, conf, per_label = {}, {}, np.zeros((n_labels, n_labels), np.int64), {}
        for cond, x in features.items():
            pred = predict(fn, x)
            acc[cond] = float((pred == y).mean()) if len(y) else float("nan")
            bal[cond] = balanced_accuracy(y, pred)
            cm = confusion_matrix(y, pred, n_labels)
            conf += cm
            per_label[cond] = {label: float(cm[i, i] / max(1, cm[i].sum()))
                               for i, label in enumerate(labels)}
        acc["mean"] = float(np.mean([acc[c] for c in features]))
        bal["mean"] = float(np.mean([bal[c] for c in features]))
        out["accuracy"][name] = acc
        out["balanced_accuracy"][name] = bal
        out["per_label_accuracy"][name] = per_label
        out["confusion"][name] = conf.tolist()
    return out
