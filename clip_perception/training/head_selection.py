"""Model selection on the validation takes only: one head per (plain or augmented, blend of the
grid), each early-stopped on validation loss; the best by validation class-balanced accuracy
is kept. Test takes never enter here."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.adapter import AdapterHead
from ..core.scoring import ZeroShotClassifier, cross_entropy
from .data import TrainingInputError
from .evaluate import BlendedHead, balanced_accuracy
from .head import TrainConfig, train_head

DEFAULT_BLEND_GRID = (0.25, 0.5, 0.75, 1.0)
PLAIN, AUGMENTED = "head_plain", "head_augmented"  # the variants, as reports name them


@dataclass
class TrainingData:
    """Features and labels of the training frames (plain and augmented) and of validation."""

    train_x: np.ndarray
    train_y: np.ndarray
    draws: list[np.ndarray]  # one (N_train, D) array per augmentation draw
    val_x: np.ndarray
    val_y: np.ndarray
    val_draws: list[np.ndarray] = field(default_factory=list)  # (N_val, D) per draw

    def variants(self) -> dict[str, tuple[np.ndarray, ...]]:
        """variant -> (train x, train y, early-stopping x, y). The augmented head early-stops
        on the validation frames as recorded and under the augmentation it trained on: on the
        recorded ones alone it stopped at epoch 0 (zero-shot) whenever the validation takes
        held no light like the augmentations, so augmentation could never show what it buys."""
        out = {PLAIN: (self.train_x, self.train_y, self.val_x, self.val_y)}
        if self.draws:
            out[AUGMENTED] = (np.concatenate([self.train_x] + self.draws),
                              np.tile(self.train_y, 1 + len(self.draws)),
                              np.concatenate([self.val_x] + self.val_draws),
                              np.tile(self.val_y, 1 + len(self.val_draws)))
        return out


@dataclass
class Candidate:
    variant: str
    blend: float
    model: BlendedHead = field(repr=False)
    history: dict = field(repr=False)
    val_balanced_accuracy: float = 0.0
    val_loss: float = 0.0

    def describe(self) -> dict:
        return {"variant": self.variant, "blend": self.blend,
                "val_balanced_accuracy": self.val_balanced_accuracy, "val_loss": self.val_loss,
                "best_epoch": self.history["best_epoch"], "epochs_run": self.history["epochs_run"]}


def check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    grid = tuple(float(b) for b in grid)
    if not grid or any(not 0.0 < b <= 1.0 for b in grid):
        raise TrainingInputError(f"blend grid values must be in (0, 1], got {list(grid)}")
    return tuple(sorted(set(grid)))


def train_candidates(data: TrainingData, classifier: ZeroShotClassifier, cfg: TrainConfig,
                     grid: Sequence[float], variants: Sequence[str] | None = None,
                     progress: bool | None = None) -> list[Candidate]:
    """Every (variant, blend) head, each early-stopped on its variant's validation views and
    scored on the validation frames as recorded (the same for every candidate)."""
    out = []
    for variant, (x, y, stop_x, stop_y) in data.variants().items():
        if variants is not None and variant not in variants:
            continue
        for blend in check_grid(grid):
            module, history = train_head(x, y, stop_x, stop_y, classifier.class_embeddings,
                                         classifier.logit_scale,
                                         dataclasses.replace(cfg, blend=blend), progress,
                                         f"{variant}, blend {blend:g}")
            head = AdapterHead(module.numpy_tensors(), {"labels": list(classifier.labels)})
            model = BlendedHead(head, classifier, blend)
            logits = model.logits(data.val_x)
            out.append(Candidate(variant, blend, model, history,
                                 balanced_accuracy(data.val_y, logits.argmax(axis=1)),
                                 cross_entropy(logits, data.val_y)))
    if not out:
        raise TrainingInputError(f"no head to train: {list(variants or [])} asked, "
                                 f"{list(data.variants())} available (augmented needs draws)")
    return out


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """Best validation balanced accuracy; ties go to the lower validation loss, then to the
    smaller blend (more weight on zero-shot, whose prompts the node can still change)."""
    return min(candidates, key=lambda c: (-round(c.val_balanced_accuracy, 9), c.val_loss, c.blend))
