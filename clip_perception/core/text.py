"""The text side: prompt templates, per-label prompt overrides, ensembles, an embedding cache.

A label's embedding is the mean of its L2-normalised prompt embeddings, renormalised (the same
result as open_clip's ``build_zero_shot_classifier``). Prompt embeddings are cached by prompt
string, so changing one label encodes only that label's prompts.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

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


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)


class TorchTextEncoder:
    """Encodes prompt strings with the model's text tower; returns (N, D) L2-normalised float32.

    For causal-mask CLIP text towers the token context is trimmed to the longest prompt of the
    batch: with a causal mask, no token attends to later (padding) positions, so the pooled
    EOT feature is unchanged and ~6x less work is done on CPU.
    """

    def __init__(self, clip, batch_size: int = 256):
        import torch

        self._torch = torch
        self.clip = clip
        self.batch_size = batch_size
        self.model = clip.model
        self.trim_context = self._can_trim(self.model)
        if not self.trim_context:
            logger.debug("text tower of %s does not allow context trimming; using full context",
                         clip.identifier)

    @staticmethod
    def _can_trim(model) -> bool:
        return (getattr(model, "attn_mask", None) is not None
                and getattr(model, "text_pool_type", None) in ("argmax", "eos")
                and hasattr(model, "positional_embedding") and hasattr(model, "token_embedding"))

    def encode(self, prompts: Sequence[str], trim: bool | None = None) -> np.ndarray:
        if not prompts:
            return np.zeros((0, self.clip.embed_dim), dtype=np.float32)
        trim = self.trim_context if trim is None else (trim and self.trim_context)
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(prompts), self.batch_size):
                tokens = self.clip.tokenizer(list(prompts[i:i + self.batch_size]))
                tokens = tokens.to(self.clip.device)
                feats = self._encode_trimmed(tokens) if trim else self.model.encode_text(tokens)
                out.append(feats.float().cpu().numpy())
        return l2_normalize(np.concatenate(out))

    def _encode_trimmed(self, tokens):
        m = self.model
        length = int((tokens != 0).sum(dim=1).max().item())
        tokens = tokens[:, :length]
        cast_dtype = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast_dtype)
        x = x + m.positional_embedding[:length].to(cast_dtype)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        return pool_and_project(m, m.ln_final(x), tokens)


def pool_and_project(model, x, tokens):
    """The EOT token's features (argmax or eos pooling, as open_clip), text projection applied."""
    import torch

    if model.text_pool_type == "argmax":
        idx = tokens.argmax(dim=-1)
    else:
        idx = (tokens == model.text_eos_id).int().argmax(dim=-1)
    x = x[torch.arange(x.shape[0], device=x.device), idx]
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


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
