"""The torch text tower: the reference every other text encoder is checked against."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..embeddings import l2_normalize

logger = logging.getLogger(__name__)


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
        length = trimmed_length(m, tokens)
        tokens = tokens[:, :length]
        cast_dtype = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast_dtype)
        x = x + m.positional_embedding[:length].to(cast_dtype)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        return pool_and_project(m, m.ln_final(x), tokens)


def pool_and_project(model, x, tokens):
    """The EOT token's features (argmax or eos pooling, as open_clip), text projection applied."""
    import torch

    idx = eot_index(model, tokens)
    x = x[torch.arange(x.shape[0], device=x.device), idx]
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


def eot_index(model, tokens):
    """Per prompt, the position whose features are pooled (open_clip's rule): the highest id
    (the end-of-text token) for argmax pooling, else the first ``text_eos_id``. Works on torch
    tensors and numpy arrays alike."""
    if model.text_pool_type == "argmax":
        return tokens.argmax(-1)
    return ((tokens == model.text_eos_id) * 1).argmax(-1)


def trimmed_length(model, tokens) -> int:
    """Context length that keeps every prompt's end-of-text position (with a causal mask, later
    positions cannot change it). Not ``tokens != 0``: id 0 is '!' as well as the padding."""
    return int(eot_index(model, tokens).max()) + 1
