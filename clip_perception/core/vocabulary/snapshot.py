"""An immutable label set with its embeddings (``LabelSet``) and how one is assembled."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..adapter import AdapterHead
from ..prompts import PromptEmbeddingCache, prompts_for
from ..scoring import (THRESHOLD_MEANINGS, Classification, ZeroShotClassifier,
                       landmark_cosines, negative_masks, neglabel_label_scores, softmax,
                       synonym_radius, top_k_classifications)
from .spec import ADAPTER_BLEND_FROM_FILE, LabelSetSpec, SpecError, negative_bank

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LabelSet:
    """An immutable snapshot of labels, landmarks and their embeddings. Swapped by reference."""

    spec: LabelSetSpec
    version: int
    classifier: ZeroShotClassifier
    landmark_embeddings: np.ndarray  # (M, D), L2-normalised, in spec.landmarks order
    adapter: Optional[AdapterHead] = None  # classifier rows in spec.labels order
    adapter_blend: float = 0.0  # resolved: never the "from file" sentinel
    negative_embeddings: Optional[np.ndarray] = None  # (M, D) the bank's words (neglabel mode)
    negative_mask: Optional[np.ndarray] = None  # (K, M) which of them are each label's negatives

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def landmarks(self) -> tuple[str, ...]:
        return self.spec.landmarks

    @property
    def landmark_key(self) -> tuple:
        """Identity of the landmark embeddings: smoothing state is reset when it changes."""
        return (self.spec.landmarks, self.spec.landmark_templates)

    def probabilities(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, K) per-label scores. softmax: over the labels (rows sum to 1); neglabel: each
        label against the negative words alone (``neglabel_label_scores``; rows do not sum)."""
        logits = self.classifier.logits(image_emb)
        if self.adapter is not None and self.adapter_blend > 0.0:
            logits = self.adapter.blended_logits(image_emb, logits, self.adapter_blend)
        if self.negative_embeddings is not None:
            negative = zero_shot_negative_logits(image_emb, self.negative_embeddings,
                                                 self.classifier.logit_scale)
            return neglabel_label_scores(logits, negative, self.negative_mask)
        return softmax(logits)

    def classify(self, image_emb: np.ndarray) -> list[Classification]:
        """Top-k per frame; ``unknown`` first when the best label's score is under
        score_threshold (its probability among the labels, or against the negatives)."""
        return top_k_classifications(self.probabilities(image_emb), self.labels,
                                     self.spec.top_k, self.spec.score_threshold)

    def scoring_summary(self) -> tuple[tuple[str, str], ...]:
        """What the scores mean, as (key, value) pairs for /diagnostics: the score mode, the
        threshold and what it applies to, and (neglabel) the negative words in use."""
        mode = self.spec.score_mode
        values = [("score mode", mode), ("score threshold", f"{self.spec.score_threshold:g}"),
                  ("threshold applies to", THRESHOLD_MEANINGS[mode])]
        if self.negative_embeddings is not None:
            source = "negative_labels" if self.spec.negative_labels else "built-in"
            per_label = self.negative_mask.sum(axis=1)
            values.append(("negative words", f"a bank of {len(self.negative_embeddings)} "
                                             f"({source}); {per_label.min()}-{per_label.max()} "
                                             "per label, without the label and its synonyms"))
        return tuple(values)

    def landmark_cosines(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, M) raw cosine similarities, in spec.landmarks order."""
        return landmark_cosines(image_emb, self.landmark_embeddings)


def build_label_set(spec: LabelSetSpec, cache: PromptEmbeddingCache, logit_scale: float,
                    embed_dim: int, version: int,
                    adapter: Optional[AdapterHead] = None) -> LabelSet:
    """Encode (only uncached) prompts and assemble the snapshot. ``adapter`` must be checked."""
    if spec.adapter_path and adapter is None:
        raise SpecError("adapter_path", f"{spec.adapter_path} is set but no checked adapter "
                                        "was given")
    class_emb = cache.ensemble(spec.labels, spec.templates, spec.overrides)
    if spec.landmarks:
        landmark_emb = cache.ensemble(spec.landmarks, spec.landmark_templates)
    else:
        landmark_emb = np.zeros((0, embed_dim), np.float32)
    negatives, mask = negative_embeddings(spec, cache, class_emb)
    blend = 0.0
    if adapter is not None:
        blend = adapter.default_blend if spec.adapter_blend == ADAPTER_BLEND_FROM_FILE \
            else spec.adapter_blend
        differs = adapter_prompt_differences(adapter, spec)
        if differs and blend < 1.0:
            logger.warning("adapter %s was trained with other prompts (%s); its blend %.2f "
                           "mixes it with zero-shot scores from the current prompts, which "
                           "the head never saw", spec.adapter_path, differs, blend)
    return LabelSet(spec=spec, version=version,
                    classifier=ZeroShotClassifier(spec.labels, class_emb, logit_scale),
                    landmark_embeddings=landmark_emb, adapter=adapter, adapter_blend=blend,
                    negative_embeddings=negatives, negative_mask=mask)


def zero_shot_negative_logits(image_emb: np.ndarray, negative_emb: np.ndarray,
                              logit_scale: float) -> np.ndarray:
    return logit_scale * (np.asarray(image_emb, np.float32) @ negative_emb.T)


def negative_embeddings(spec: LabelSetSpec, cache: PromptEmbeddingCache, class_emb: np.ndarray
                        ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """neglabel: the bank's embeddings (label templates) and the (K, M) mask of each label's
    negatives (``negative_masks``); (None, None) in softmax mode."""
    bank = negative_bank(spec)
    if spec.score_mode != "neglabel":
        return None, None
    emb = cache.ensemble(bank, spec.templates)
    same = np.array([[word == label for word in bank] for label in spec.labels], bool)
    mask = negative_masks(emb, class_emb, same, bank_synonym_radius(emb))
    bare = [label for label, row in zip(spec.labels, mask) if not row.any()]
    if bare:
        raise SpecError("negative_labels", f"no negative word is left for {bare}: each of the "
                                           f"{len(bank)} is the label itself or as near it as a "
                                           "synonym; neglabel needs words for other things")
    return np.ascontiguousarray(emb), mask


_last_radius: tuple[bytes, float] = (b"", 0.0)  # (digest of a bank's embeddings, its radius)


def bank_synonym_radius(emb: np.ndarray) -> float:
    """``synonym_radius(emb)``, kept for the last bank seen: every label change rebuilds the set
    with the same bank and model, and the bank's O(M^2) product need not run again. Keyed by the
    embeddings' bytes, so another bank, template list or model gets its own."""
    global _last_radius
    key = hashlib.blake2b(np.ascontiguousarray(emb, np.float32).tobytes(),
                          digest_size=16).digest()
    memo = _last_radius  # one read: another build thread may replace it meanwhile
    if memo[0] != key:
        memo = _last_radius = (key, synonym_radius(emb))
    return memo[1]


def adapter_prompt_differences(adapter: AdapterHead, spec: LabelSetSpec) -> str:
    """What differs between the prompts an adapter was trained with and ``spec``'s ("" if none).

    Only the prompts of the labels in use count; metadata without prompts is not compared.
    """
    meta = adapter.metadata
    if "templates" not in meta:
        return ""
    trained = {label: prompts_for(label, meta["templates"], meta.get("label_prompts") or {})
               for label in spec.labels}
    current = {label: prompts_for(label, spec.templates, spec.overrides) for label in spec.labels}
    changed = [label for label in spec.labels if trained[label] != current[label]]
    return f"prompts of {changed}" if changed else ""
