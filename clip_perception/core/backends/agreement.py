"""Does a candidate engine make the fp32 reference's decisions? Ties forgiven, errors refused.

A decision is an argmax over scores: a photo's best label (cosine to the label embeddings) or
its nearest image (cosine to the other images: what the place memory ranks by). Where the fp32
reference's own top-2 margin on a photo is within the noise the engine adds to the scores,
either answer is as right as the other: a disagreement there is a tie, not an error.

The noise is measured from the engine itself, never tuned. The engine's score deviations from
the reference are split into a bias (per choice, the mean over the photos: an engine pushing
every photo towards one label) and noise (the rest). Per photo, the noise is the most it moved
any competitor's score relative to the reference's choice (the only change that can flip the
decision); over the photos, its ``NOISE_QUANTILE`` is the tie threshold. A bias is not noise:
a flip it causes on a photo with a margin above the threshold is an error. Photos whose
reference margin exceeds the threshold are decisive; on those the engine must agree on >= ``min_agreement``. A noisy engine leaves few
decisive photos, so the rule also needs power: the decisive photos must be enough that an engine
wrong on ``DETECTABLE_ERROR_RATE`` of them would be refused with probability
``REQUIRED_POWER``. Without that, the report says so and the strict rule judges (agreement on
all photos, ties counted as errors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_QUANTILE = 0.95          # of the per-photo noise: a high quantile, the engine's own spread
DETECTABLE_ERROR_RATE = 0.1    # an engine wrong on 1 decisive photo in 10 ...
REQUIRED_POWER = 0.9           # ... is refused with at least this probability
LABELS, IMAGES = "label top-1", "nearest image"


@dataclass(frozen=True)
class Agreement:
    """One decision task judged on ``photos`` rows. Margins and noise are in cosine units."""

    task: str
    photos: int
    agreeing: int          # rows with the reference's decision (the strict rule counts these)
    noise: float           # NOISE_QUANTILE of the engine's per-photo score noise
    decisive: int          # rows whose reference top-2 margin > noise
    errors: int            # disagreements on decisive rows
    min_agreement: float
    power: float           # P(refuse | wrong on DETECTABLE_ERROR_RATE of the decisive rows)

    @property
    def ties(self) -> int:
        """Disagreements forgiven: the reference's margin there is within the engine's noise."""
        return self.photos - self.agreeing - self.errors

    @property
    def agreement(self) -> float:
        """Over all rows, ties counted as disagreements."""
        return self.agreeing / self.photos if self.photos else math.nan

    @property
    def decisive_agreement(self) -> float:
        return 1.0 - self.errors / self.decisive if self.decisive else math.nan

    @property
    def powered(self) -> bool:
        return self.power >= REQUIRED_POWER

    @property
    def ok(self) -> bool:
        if self.powered:
            return self.decisive_agreement >= self.min_agreement
        return self.agreement >= self.min_agreement

    def __str__(self) -> str:
        strict = f"{self.agreement:.1%} of {self.photos}"
        if not self.powered:
            return (f"{self.task} {strict} (strict rule: only {self.decisive} decisive photos "
                    f"above noise {self.noise:.5f}, too few to judge ties; "
                    f"power {self.power:.2f} < {REQUIRED_POWER})")
        return (f"{self.task} {self.decisive_agreement:.1%} of {self.decisive} decisive photos "
                f"(ties forgiven: {self.ties}, fp32's margin <= engine noise {self.noise:.5f}; "
                f"{strict} counting ties)")

    def as_dict(self) -> dict:
        return {"task": self.task, "photos": self.photos, "agreement": self.agreement,
                "noise": self.noise, "decisive": self.decisive, "ties": self.ties,
                "errors": self.errors, "decisive_agreement": self.decisive_agreement,
                "power": self.power, "powered": self.powered, "ok": self.ok}


def allowed_errors(decisive: int, min_agreement: float) -> int:
    """Most disagreements ``decisive`` rows may have and still agree on >= min_agreement."""
    return max(0, math.floor((1.0 - min_agreement) * decisive + 1e-9))


def refusal_power(decisive: int, min_agreement: float,
                  error_rate: float = DETECTABLE_ERROR_RATE) -> float:
    """P(an engine wrong on ``error_rate`` of ``decisive`` rows makes more errors than
    allowed), i.e. the binomial tail above allowed_errors."""
    if decisive <= 0:
        return 0.0
    k = allowed_errors(decisive, min_agreement)
    accepted = sum(math.comb(decisive, i) * error_rate ** i * (1 - error_rate) ** (decisive - i)
                   for i in range(min(k, decisive) + 1))
    return max(0.0, 1.0 - accepted)


def judge(task: str, reference_scores: np.ndarray, candidate_scores: np.ndarray,
          min_agreement: float, excluded: np.ndarray | None = None) -> Agreement:
    """(N, K) scores of the same N rows over the same K choices, by reference and candidate;
    ``excluded`` (N, K) bool marks choices a row may not take (an image is not its own
    neighbour)."""
    ref = np.asarray(reference_scores, np.float64)
    cand = np.asarray(candidate_scores, np.float64)
    excluded = np.zeros(ref.shape, bool) if excluded is None else np.asarray(excluded, bool)
    if ref.shape != cand.shape or ref.shape != excluded.shape or ref.ndim != 2 or \
            (~excluded).sum(axis=1).min(initial=2) < 2:
        raise ValueError(f"{task}: scores must be two (N, K) arrays of one shape with >= 2 "
                         f"choices per row, got {ref.shape} and {cand.shape}")
    rows = np.arange(len(ref))
    deviation = np.where(excluded, np.nan, cand - ref)
    ref = np.where(excluded, -np.inf, ref)
    cand = np.where(excluded, -np.inf, cand)
    chosen = ref.argmax(axis=1)
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    # the engine's noise: its deviations less their mean over the photos (its bias)
    noise = deviation - np.nanmean(deviation, axis=0, keepdims=True)
    # how far it moved each competitor's score towards (or from) the reference's choice
    noise_per_row = np.nanmax(np.abs(noise - noise[rows, chosen][:, None]), axis=1)
    noise = float(np.quantile(noise_per_row, NOISE_QUANTILE)) if len(ref) else math.nan
    agree = cand.argmax(axis=1) == chosen
    decisive = margin > noise
    n_decisive = int(decisive.sum())
    return Agreement(task, len(ref), int(agree.sum()), noise, n_decisive,
                     int((decisive & ~agree).sum()), min_agreement,
                     refusal_power(n_decisive, min_agreement))


def label_agreement(candidate: np.ndarray, reference: np.ndarray, labels: np.ndarray,
                    min_agreement: float) -> Agreement:
    """Best label of each row, (N, D) embeddings and (K, D) label embeddings."""
    return judge(LABELS, reference @ labels.T, candidate @ labels.T, min_agreement)


def image_agreement(candidate: np.ndarray, reference: np.ndarray, min_agreement: float,
                    gallery: np.ndarray | None = None) -> Agreement:
    """Nearest image of each row. Without ``gallery``: among the other rows, each side ranking
    by its own embeddings (as a memory filled and queried by one engine does). With a fixed
    (M, D) ``gallery`` (fp32 embeddings of other images): the rows' nearest gallery image."""
    if gallery is None:
        return judge(IMAGES, reference @ reference.T, candidate @ candidate.T, min_agreement,
                     np.eye(len(reference), dtype=bool))
    return judge(IMAGES, reference @ gallery.T, candidate @ gallery.T, min_agreement)
