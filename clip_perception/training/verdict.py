"""The verdict on the test takes: is the head better than zero-shot, by enough, everywhere?

Written only if the class-balanced accuracy gain over zero-shot is at least ``min_gain``
points with a bootstrap 95 % lower bound above 0, and no condition (real or synthetic) loses
more than ``max_loss`` points. The bootstrap resamples whole takes per label, then frames
within each drawn take: frames of a take are near copies, so resampling frames alone would
pretend there is far more evidence than there is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .evaluate import balanced_accuracy


@dataclass
class VerdictRule:
    min_gain: float = 1.0  # accuracy points
    max_loss: float = 2.0  # accuracy points, any condition
    force: bool = False
    resamples: int = 2000
    seed: int = 0


@dataclass
class Outcome:
    """Predictions of zero-shot and the head on one set of test frames."""

    y: np.ndarray
    zero_shot: np.ndarray
    head: np.ndarray

    def change(self) -> dict:
        zs, hd = balanced_accuracy(self.y, self.zero_shot), balanced_accuracy(self.y, self.head)
        return {"zero_shot": zs, "head": hd, "change": 100.0 * (hd - zs), "n_frames": int(len(self.y))}


def bootstrap_gain(outcome: Outcome, take_ids: np.ndarray, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """(2.5 %, 97.5 %) percentiles of the balanced-accuracy gain in points, resampling takes
    within each label and frames within each take."""
    rng = np.random.default_rng(seed)
    y, take_ids = np.asarray(outcome.y), np.asarray(take_ids)
    diff = (outcome.head == y).astype(np.float64) - (outcome.zero_shot == y)
    recalls = []
    for k in np.unique(y):
        takes = [np.flatnonzero((y == k) & (take_ids == t)) for t in np.unique(take_ids[y == k])]
        # per take and resample: summed diff of a frame resample of the take, and its size
        sums = np.stack([diff[idx][rng.integers(0, len(idx), (resamples, len(idx)))].sum(1)
                         for idx in takes], axis=1)
        sizes = np.asarray([len(idx) for idx in takes], np.float64)
        pick = rng.integers(0, len(takes), (resamples, len(takes)))
        rows = np.arange(resamples)[:, None]
        recalls.append(sums[rows, pick].sum(1) / sizes[pick].sum(1))
    gains = 100.0 * np.mean(recalls, axis=0)
    return float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))


def decide(overall: Outcome, take_ids: np.ndarray, real: Mapping[str, Outcome],
           synthetic: Mapping[str, Outcome], rule: VerdictRule, optimistic: bool = False) -> dict:
    """The report's ``verdict``: written, reason, gain, gain_ci_low, per_condition."""
    main = overall.change()
    gain = main["change"]
    ci_low, ci_high = bootstrap_gain(overall, take_ids, rule.resamples, rule.seed)
    per_condition = {name: {"kind": "real", **o.change()} for name, o in real.items()}
    per_condition.update({name: {"kind": "synthetic", **o.change()} for name, o in synthetic.items()})
    failures = []
    if gain < rule.min_gain:
        failures.append(f"gain {gain:+.1f} points is below --min-gain {rule.min_gain:g}")
    if not ci_low > 0.0:
        failures.append(f"the bootstrap 95 % lower bound of the gain is {ci_low:+.1f} points, "
                        "not above 0")
    losers = {n: c["change"] for n, c in per_condition.items() if c["change"] < -rule.max_loss}
    if losers:
        failures.append("condition(s) losing more than --max-loss "
                        f"{rule.max_loss:g} points: " +
                        ", ".join(f"{n} ({per_condition[n]['kind']}) {v:+.1f}"
                                  for n, v in sorted(losers.items())))
    summary = (f"on {main['n_frames']} test frames ({len(np.unique(take_ids))} takes), class-balanced "
               f"accuracy {100 * main['head']:.1f} % vs zero-shot {100 * main['zero_shot']:.1f} %: "
               f"gain {gain:+.1f} points, 95 % interval [{ci_low:+.1f}, {ci_high:+.1f}]")
    _, counts = np.unique([np.asarray(overall.y)[take_ids == t][0]
                                for t in np.unique(take_ids)], return_counts=True)
    if (counts < 2).any():
        summary += ("; some labels have a single test take, so the interval shows frame-to-frame "
                    "noise only, not how much another take could differ")
    if optimistic:
        summary += ("; OPTIMISTIC: some labels had fewer than 3 takes and were cut into pieces "
                    "(--allow-few-takes), so test frames have near copies in training")
    if not failures:
        written, reason = True, f"head written: {summary}"
    elif rule.force:
        written, reason = True, (f"head written because --force was given, although "
                                 f"{'; '.join(failures)} ({summary})")
    else:
        written, reason = False, (f"head not written: {'; '.join(failures)} ({summary}). "
                                  "Record more takes or use --force to write it anyway")
    return {"written": written, "reason": reason, "gain": gain, "gain_ci_low": ci_low,
            "per_condition": per_condition}
