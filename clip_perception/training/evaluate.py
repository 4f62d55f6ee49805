"""Accuracy per lighting condition, confusion matrices, and the write-or-refuse rule."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

LogitsFn = Callable[[np.ndarray], np.ndarray]  # (N, D) embeddings -> (N, L) logits


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """rows = true label, columns = predicted label."""
    m = np.zeros((n_labels, n_labels), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def evaluate_methods(features: Mapping[str, np.ndarray], y: np.ndarray, labels: Sequence[str],
                     methods: Mapping[str, LogitsFn]) -> dict:
    """``features``: condition -> (N, D) embeddings of the same N frames; ``methods``: name ->
    logits function. Returns accuracies per method and condition (plus their mean), per-label
    accuracy and a confusion matrix per method (summed over conditions)."""
    y = np.asarray(y, np.int64)
    n_labels = len(labels)
    out = {"labels": list(labels), "conditions": list(features), "n_frames": int(len(y)),
           "frames_per_label": {label: int((y == i).sum()) for i, label in enumerate(labels)},
           "accuracy": {}, "per_label_accuracy": {}, "confusion": {}}
    for name, fn in methods.items():
        acc, conf = {}, np.zeros((n_labels, n_labels), np.int64)
        per_label = {}
        for cond, x in features.items():
            pred = np.argmax(fn(x), axis=-1)
            acc[cond] = float((pred == y).mean()) if len(y) else float("nan")
            cm = confusion_matrix(y, pred, n_labels)
            conf += cm
            per_label[cond] = {label: float(cm[i, i] / max(1, cm[i].sum()))
                               for i, label in enumerate(labels)}
        acc["mean"] = float(np.mean([acc[c] for c in features]))
        out["accuracy"][name] = acc
        out["per_label_accuracy"][name] = per_label
        out["confusion"][name] = conf.tolist()
    return out


def write_decision(metrics: dict, method: str, force: bool, baseline: str = "zero_shot") -> tuple[bool, str]:
    """A head whose mean accuracy over the lighting conditions is below zero-shot's is not
    written unless forced. The mean over conditions is the criterion because robustness to
    lighting is what the head is for; the per-condition numbers are in the report."""
    head, base = metrics["accuracy"][method]["mean"], metrics["accuracy"][baseline]["mean"]
    if head >= base:
        return True, (f"head ({method}) mean validation accuracy over lighting conditions "
                      f"{head:.3f} >= zero-shot {base:.3f}")
    reason = (f"head ({method}) mean validation accuracy over lighting conditions {head:.3f} is "
              f"worse than zero-shot {base:.3f}")
    if force:
        return True, reason + "; writing it anyway because --force was given"
    return False, reason + "; not writing it (use --force to write it anyway)"
