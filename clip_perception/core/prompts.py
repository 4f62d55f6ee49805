"""The text side's rules: prompt templates, per-label prompt overrides, and the ensemble of a
label's prompt embeddings with a cache by prompt string.

A label's embedding is the mean of its L2-normalised prompt embeddings, renormalised (the same
result as open_clip's ``build_zero_shot_classifier``). Prompt embeddings are cached by prompt
string, so changing one label encodes only that label's prompts. The text encoders themselves
are backends (``backends/text_torch.py``, ``backends/text_onnx.py``).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .embeddings import l2_normalize

DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a close-up photo of a {}.",
)
OVERRIDE_SEPARATOR = "|"  # "label=prompt one|prompt two"; prompts themselves may contain commas


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if not templates:
        raise ValueError("prompt templates are empty; expected at least one, e.g. 'a photo of a {}.'")
    for t in templates:
        if t.count("{}") != 1:
            raise ValueError(f"prompt template {t!r} must contain '{{}}' exactly once")
    return tuple(templates)


def parse_label_prompts(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Parse ``label=prompt[|prompt...]`` entries into {label: prompts}.

    The override replaces the templates for that label, e.g. the fix for strawberries seen as
    peaches: ``strawberry=a photo of a red strawberry with green stem, a type of fruit``.
    """
    overrides: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        if not entry.strip():
            continue
        label, sep, rest = entry.partition("=")
        label = label.strip()
        prompts = tuple(p.strip() for p in rest.split(OVERRIDE_SEPARATOR) if p.strip())
        if not sep or not label or not prompts:
            raise ValueError(f"label prompt {entry!r} is not 'label=prompt[|prompt...]'")
        if label in overrides:
            raise ValueError(f"label {label!r} has more than one prompt override")
        overrides[label] = prompts
    return overrides


def prompts_for(label: str, templates: Sequence[str],
                overrides: Mapping[str, Sequence[str]] | None = None) -> tuple[str, ...]:
    if overrides and label in overrides:
        return tuple(overrides[label])
    return tuple(t.replace("{}", label) for t in templates)


class PromptEmbeddingCache:
    """Prompt string -> embedding, encoding only prompts not seen before. Thread-safe."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], max_entries: int = 20000):
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.encoded_count = 0  # prompts actually sent to the encoder (for tests and diagnostics)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            fresh = self._encode(missing)
            with self._lock:
                for p, e in zip(missing, fresh):
                    self._cache[p] = e
                self.encoded_count += len(missing)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        with self._lock:
            for p in prompts:
                self._cache.move_to_end(p)
            return np.stack([self._cache[p] for p in prompts])

    def ensemble(self, labels: Sequence[str], templates: Sequence[str],
                 overrides: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
        """(L, D) class embeddings: per label, mean of normalised prompt embeddings, renormalised."""
        per_label = [prompts_for(label, templates, overrides) for label in labels]
        flat = [p for prompts in per_label for p in prompts]
        emb = self.embed(flat)
        out, start = [], 0
        for prompts in per_label:
            out.append(emb[start:start + len(prompts)].mean(axis=0))
            start += len(prompts)
        return l2_normalize(np.stack(out)) if out else np.zeros((0, emb.shape[-1]), np.float32)
