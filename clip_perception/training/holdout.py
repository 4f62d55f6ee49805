"""Leave-one-condition-out: train without one real lighting condition, test on all of it.

That is the robot's real question ("will the head trained by day help at night?"). The head
has the variant and blend validation chose for the main run. It trains on the main split's
training takes of the other conditions (minus frames within the gap of the held-out
condition's frames) and early-stops on their validation and test takes: the main run's test
takes never trained anything, and the held-out condition is this run's test.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.scoring import ZeroShotClassifier
from .data import Frame
from .evaluate import balanced_accuracy, predict
from .features import FeatureTable
from .head import TrainConfig
from .head_selection import AUGMENTED, Candidate, TrainingData, train_candidates
from .split import Split, drop_near


def real_conditions(frames: Sequence[Frame]) -> list[str]:
    return sorted({f.condition for f in frames if f.condition})


def leave_one_condition_out(frames: Sequence[Frame], labels: Sequence[str], split: Split,
                            original: FeatureTable, draws: Sequence[FeatureTable],
                            held_draws: Sequence[FeatureTable], chosen: Candidate,
                            classifier: ZeroShotClassifier, cfg: TrainConfig,
                            gap_seconds: float, progress: bool | None = None) -> dict:
    """condition -> numbers of the head trained without it, tested on it (empty with < 2).
    ``draws``: augmentation draws of the training frames; ``held_draws``: of the validation and
    test frames, which the augmented head early-stops on here."""
    conditions = real_conditions(frames)
    if len(conditions) < 2:
        return {}
    index = {label: i for i, label in enumerate(labels)}

    def y(fs):
        return np.asarray([index[f.label] for f in fs], np.int64)

    out = {}
    for cond in conditions:
        held = [f for f in frames if f.condition == cond]
        train, dropped = drop_near([f for f in split.train_frames if f.condition != cond], held,
                                   gap_seconds)
        val = [f for s in ("validation", "test") for f in split.frames(s) if f.condition != cond]
        lacking = sorted({label for label in labels
                          if not any(f.label == label for f in train)
                          or not any(f.label == label for f in val)})
        if lacking:
            out[cond] = {"skipped": f"label(s) {lacking} have no training or validation takes "
                                    f"outside condition '{cond}'"}
            continue
        augmented = chosen.variant == AUGMENTED
        data = TrainingData(original.of(train), y(train),
                            [d.of(train) for d in draws] if augmented else [],
                            original.of(val), y(val),
                            [d.of(val) for d in held_draws] if augmented else [])
        model = train_candidates(data, classifier, cfg, [chosen.blend], [chosen.variant],
                                 progress)[0].model
        x, ty = original.of(held), y(held)
        zs, hd = (balanced_accuracy(ty, predict(fn, x)) for fn in (classifier.logits, model.logits))
        out[cond] = {"trained_on": [c for c in conditions if c != cond], "variant": chosen.variant,
                     "blend": chosen.blend, "n_train_frames": len(train),
                     "dropped_at_gap": dropped, "n_test_frames": len(held),
                     "zero_shot": zs, "head": hd, "gain": 100.0 * (hd - zs)}
    return out
