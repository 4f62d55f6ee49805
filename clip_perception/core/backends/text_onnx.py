"""The ONNX Runtime text tower: its export and its encoder (the torch reference: text_torch.py).

A label-set change is the slow path on CPU (20 labels x 7 templates = 140 prompts). The ONNX
text tower keeps TorchTextEncoder's context trimming: it takes tokens already cut to the
longest prompt of the batch (dynamic batch and sequence axes) and slices the positional
embedding and causal mask to that length inside the graph. Both encoders have
``encode(prompts) -> (N, D)`` float32, L2-normalised rows.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..artifacts import model_artifact_dir
from ..embeddings import l2_normalize
from . import onnxruntime_backend as ortb
from .base import BackendUnavailable
from .onnx_export import export_onnx, exporter_tag
from .text_torch import TorchTextEncoder, pool_and_project, trimmed_length

logger = logging.getLogger(__name__)

TEXT_INPUT_NAME = "input_ids"
TEXT_OUTPUT_NAME = "text_embeds"
def text_onnx_path(clip, cache_dir=None) -> Path:
    return model_artifact_dir(clip, cache_dir) / f"text_fp32_trimmed_{exporter_tag()}.onnx"


def export_text_tower(clip, path: str | os.PathLike, opset: int = 18) -> Path:
    """Export the trimmed-context text tower (tokens (N, L) int64 -> (N, D) normalised)."""
    import torch

    model = clip.model
    if not TorchTextEncoder._can_trim(model):
        raise BackendUnavailable(f"the text tower of {clip.identifier} is not a causal CLIP "
                                 "text transformer with argmax/eos pooling; no ONNX text export")

    blocks = list(getattr(model.transformer, "resblocks", []))
    for block in blocks:
        attn = getattr(block, "attn", None)
        if (not isinstance(attn, torch.nn.MultiheadAttention) or not attn.batch_first
                or not attn._qkv_same_embed_dim or hasattr(block, "ln_1_kv")):
            raise BackendUnavailable(f"text block {type(block).__name__} of {clip.identifier} "
                                     "is not a standard batch-first self-attention block")
    if not blocks:
        raise BackendUnavailable(f"text tower of {clip.identifier} has no resblocks")

    def attention(attn, x, mask):
        # nn.MultiheadAttention's own forward bakes the example's sequence length into its
        # reshapes when traced; this one reshapes with -1, so the length stays dynamic.
        heads = attn.num_heads
        b = x.shape[0]
        q, k, v = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
        q, k, v = (t.reshape(b, -1, heads, attn.head_dim).transpose(1, 2) for t in (q, k, v))
        w = (q @ k.transpose(-1, -2)) * (attn.head_dim ** -0.5) + mask
        o = (w.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, -1, attn.embed_dim)
        return attn.out_proj(o)

    class _TextTower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens):
            m = self.m
            length = tokens.shape[1]  # traced as a dynamic Shape op (dynamic_axes below)
            cast_dtype = m.transformer.get_cast_dtype()
            x = m.token_embedding(tokens).to(cast_dtype)
            x = x + m.positional_embedding[:length].to(cast_dtype)
            mask = m.attn_mask[:length, :length].to(cast_dtype)
            for blk in m.transformer.resblocks:
                x = x + blk.ls_1(attention(blk.attn, blk.ln_1(x), mask))
                x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
            x = pool_and_project(m, m.ln_final(x), tokens)
            return torch.nn.functional.normalize(x, dim=-1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Batch 2 and length 9: neither may be specialised to 1 by the tracer.
    example = clip.tokenizer(["a photo of a cat.", "a photo of a big red dog."])[:, :9]
    example = example.to(clip.device)
    export_onnx(_TextTower(model).eval(), example, path, TEXT_INPUT_NAME, TEXT_OUTPUT_NAME,
                {TEXT_INPUT_NAME: {0: "batch", 1: "length"}, TEXT_OUTPUT_NAME: {0: "batch"}},
                opset)
    logger.info("exported trimmed text tower of %s to %s", clip.identifier, path)
    return path


class OnnxRuntimeTextEncoder:
    """``encode(prompts) -> (N, D)``: tokenise, trim to the longest prompt, run ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, clip, cache_dir=None, threads: int = 0, batch_size: int = 256,
                 spinning: bool = False):

        ort = ortb.import_onnxruntime()
        self.clip = clip
        self.batch_size = batch_size
        path = text_onnx_path(clip, cache_dir)
        if not path.is_file():
            export_text_tower(clip, path)
        options = ortb.session_options(ort, threads, spinning)
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.threads = options.intra_op_num_threads

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        if not prompts:
            return np.zeros((0, self.clip.embed_dim), dtype=np.float32)
        out = []
        for i in range(0, len(prompts), self.batch_size):
            tokens = self.clip.tokenizer(list(prompts[i:i + self.batch_size])).numpy()
            length = trimmed_length(self.clip.model, tokens)
            (emb,) = self.session.run([TEXT_OUTPUT_NAME],
                                      {TEXT_INPUT_NAME: np.ascontiguousarray(tokens[:, :length])})
            out.append(emb)
        return l2_normalize(np.concatenate(out).astype(np.float32, copy=False))

    def describe(self) -> str:
        return f"{self.name} text (fp32, cpu, {self.threads} threads)"
