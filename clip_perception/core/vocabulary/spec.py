"""What a label set is: labels, prompts, landmarks, thresholds, adapter; validated on construction.

``SpecError`` names the setting and says why; the node turns it into a rejected parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import SettingError
from ..prompts import parse_label_prompts, prompts_for, validate_templates
from ..scoring import DEFAULT_SCORE_MODE, SCORE_MODES


DEFAULT_LANDMARK_TEMPLATES = ("a photo of {}.",)
ADAPTER_BLEND_FROM_FILE = -1.0  # adapter_blend sentinel: use the blend stored with the adapter


class SpecError(SettingError, ValueError):
    """An invalid label-set setting; ``parameter`` names the setting, ``reason`` says why."""


@dataclass(frozen=True)
class LabelSetSpec:
    """Everything that decides what a frame's outputs mean. Validated on construction."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    label_prompts: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, prompts) overrides
    top_k: int = 5
    score_threshold: float = 0.0
    landmarks: tuple[str, ...] = ()
    landmark_templates: tuple[str, ...] = DEFAULT_LANDMARK_TEMPLATES
    landmark_smoothing: float = 0.0
    adapter_path: str = ""
    adapter_blend: float = ADAPTER_BLEND_FROM_FILE
    score_mode: str = DEFAULT_SCORE_MODE  # what score_threshold is compared with (SCORE_MODES)
    negative_labels: tuple[str, ...] = ()  # neglabel's bank; empty: DEFAULT_NEGATIVE_LABELS

    def __post_init__(self):
        _validate_spec(self)

    @classmethod
    def from_values(cls, *, labels: Sequence[str], prompt_templates: Sequence[str],
                    label_prompts: Sequence[str] = (), top_k: int = 5,
                    score_threshold: float = 0.0, landmarks: Sequence[str] = (),
                    landmark_templates: Sequence[str] = DEFAULT_LANDMARK_TEMPLATES,
                    landmark_smoothing: float = 0.0, adapter_path: str = "",
                    adapter_blend: float = ADAPTER_BLEND_FROM_FILE,
                    score_mode: str = DEFAULT_SCORE_MODE,
                    negative_labels: Sequence[str] = ()) -> "LabelSetSpec":
        """Build from parameter-shaped values (``label_prompts`` as ``label=prompt|...`` strings)."""
        try:
            overrides = parse_label_prompts(label_prompts)
        except ValueError as exc:
            raise SpecError("label_prompts", str(exc)) from None
        return cls(labels=tuple(labels), templates=tuple(prompt_templates),
                   label_prompts=tuple(overrides.items()), top_k=int(top_k),
                   score_threshold=float(score_threshold), landmarks=tuple(landmarks),
                   landmark_templates=tuple(landmark_templates),
                   landmark_smoothing=float(landmark_smoothing), adapter_path=adapter_path,
                   adapter_blend=float(adapter_blend), score_mode=str(score_mode),
                   negative_labels=tuple(negative_labels))

    @property
    def overrides(self) -> dict[str, tuple[str, ...]]:
        return dict(self.label_prompts)


def name_list_problem(values: Sequence[str], allow_empty: bool) -> str:
    """Why a list of names (labels, landmarks, topics) is unusable, or "" if it is fine."""
    if not values and not allow_empty:
        return "is empty; expected at least one entry, e.g. ['cup', 'chair']"
    blank = [i for i, v in enumerate(values) if not str(v).strip()]
    if blank:
        return f"entries {blank} are blank; got {list(values)}"
    dupes = sorted({v for v in values if list(values).count(v) > 1})
    if dupes:
        return f"duplicate entries {dupes}; each must appear once"
    return ""


def _validate_spec(spec: LabelSetSpec) -> None:
    def names(param: str, values: Sequence[str], allow_empty: bool) -> None:
        problem = name_list_problem(values, allow_empty)
        if problem:
            raise SpecError(param, problem)

    names("labels", spec.labels, allow_empty=False)
    names("landmarks", spec.landmarks, allow_empty=True)
    names("negative_labels", spec.negative_labels, allow_empty=True)
    if spec.score_mode not in SCORE_MODES:
        raise SpecError("score_mode", f"got {spec.score_mode!r}, expected one of "
                                      f"{', '.join(SCORE_MODES)} (softmax: the best label's "
                                      "probability among the labels; neglabel: the labels' "
                                      "share against the negative words)")
    for param, templates in (("prompt_templates", spec.templates),
                             ("landmark_templates", spec.landmark_templates)):
        try:
            validate_templates(templates)
        except ValueError as exc:
            raise SpecError(param, str(exc)) from None
    unknown = [label for label, _ in spec.label_prompts if label not in spec.labels]
    if unknown:
        raise SpecError("label_prompts", f"override(s) for {unknown} name no label in "
                                         f"labels {list(spec.labels)}")
    if spec.top_k < 1:
        raise SpecError("top_k", f"must be >= 1, got {spec.top_k}")
    if not 0.0 <= spec.score_threshold <= 1.0 or math.isnan(spec.score_threshold):
        raise SpecError("score_threshold", f"must be in [0, 1], got {spec.score_threshold}")
    if not 0.0 <= spec.landmark_smoothing < 1.0:
        raise SpecError("landmark_smoothing", "must be in [0, 1) (weight of the previous "
                                              f"smoothed value), got {spec.landmark_smoothing}")
    blend = spec.adapter_blend
    if blend != ADAPTER_BLEND_FROM_FILE and not 0.0 <= blend <= 1.0:
        raise SpecError("adapter_blend", f"must be in [0, 1], or {ADAPTER_BLEND_FROM_FILE} for "
                                         f"the blend stored with the adapter; got {blend}")


def negative_bank(spec: LabelSetSpec) -> tuple[str, ...]:
    """The bank of negative words of a neglabel spec (none in softmax mode): its own or the
    built-in one. A word that is also a label stays: it is every other label's negative."""
    if spec.score_mode != "neglabel":
        return ()
    from .negatives import DEFAULT_NEGATIVE_LABELS

    return tuple(dict.fromkeys(spec.negative_labels or DEFAULT_NEGATIVE_LABELS))


def count_prompts(spec: LabelSetSpec) -> int:
    """How many prompt strings a spec encodes (for logs and diagnostics)."""
    overrides = spec.overrides
    return (sum(len(prompts_for(label, spec.templates, overrides)) for label in spec.labels)
            + len(spec.landmarks) * len(spec.landmark_templates)
            + len(set(negative_bank(spec)) - set(spec.labels)) * len(spec.templates))
