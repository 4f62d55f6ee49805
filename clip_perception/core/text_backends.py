"""Text tower backends: the torch reference (core/text.py) and an ONNX Runtime export.

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

from .artifacts import model_artifact_dir
from .backends.base import BackendUnavailable
from .backends.onnx_export import export_onnx, exporter_tag
from .text import TorchTextEncoder, l2_normalize, pool_and_project

logger = logging.getLogger(__name__)

TEXT_BACKENDS = ("auto", "onnxruntime", "torch")
TEXT_INPUT_NAME = "input_ids"
TEXT_OUTPUT_NAME = "text_embeds"
# Fixed prompts that both encoders must agree on before the ONNX one is used.
VERIFY_PROMPTS = ("a photo of a dog.", "a red door", "a close-up photo of a stop sign.",
                  "x", "a blurry photo of the large office chair next to a window.")
TEXT_MIN_COSINE = 0.9999  # fp32 vs fp32: only summation order differs


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
        from .backends.onnxruntime_backend import import_onnxruntime, session_options

        ort = import_onnxruntime()
        self.clip = clip
        self.batch_size = batch_size
        path = text_onnx_path(clip, cache_dir)
        if not path.is_file():
            export_text_tower(clip, path)
        options = session_options(ort, threads, spinning)
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.threads = options.intra_op_num_threads

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        if not prompts:
            return np.zeros((0, self.clip.embed_dim), dtype=np.float32)
        out = []
        for i in range(0, len(prompts), self.batch_size):
            tokens = self.clip.tokenizer(list(prompts[i:i + self.batch_size])).numpy()
            length = int((tokens != 0).sum(axis=1).max())
            (emb,) = self.session.run([TEXT_OUTPUT_NAME],
                                      {TEXT_INPUT_NAME: np.ascontiguousarray(tokens[:, :length])})
            out.append(emb)
        return l2_normalize(np.concatenate(out).astype(np.float32, copy=False))

    def describe(self) -> str:
        return f"{self.name} text (fp32, cpu, {self.threads} threads)"


def _torch_text(clip):
    enc = TorchTextEncoder(clip)
    enc.describe = lambda: f"torch text (fp32, {clip.device}, trimmed={enc.trim_context})"
    return enc


def create_text_encoder(clip, backend: str = "auto", cache_dir=None, threads: int = 0):
    """A text encoder with ``encode(prompts) -> (N, D)``; ``.selection`` lists what was tried.

    ``auto``: onnxruntime on CPU models when it imports, exports and agrees with torch on fixed
    prompts (cosine >= 0.9999); otherwise torch (CUDA models always use torch: the text tower
    runs only on label changes and torch on a GPU is fast enough).
    """
    if backend not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend '{backend}'; expected one of {TEXT_BACKENDS}")
    reasons: list[str] = []
    if backend == "torch":
        enc = _torch_text(clip)
    elif backend == "auto" and str(clip.device).startswith("cuda"):
        reasons.append("onnxruntime text skipped: model is on CUDA, torch is used there")
        enc = _torch_text(clip)
    else:
        try:
            enc = _verified_ort_text(clip, cache_dir, threads)
        except Exception as exc:
            if backend == "onnxruntime":
                if isinstance(exc, BackendUnavailable):
                    raise
                raise BackendUnavailable(f"onnxruntime text encoder failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
            reasons.append(f"onnxruntime text skipped: {exc}")
            logger.warning("text encoder: %s; using torch", reasons[-1])
            enc = _torch_text(clip)
    logger.info("text encoder: %s%s", enc.describe(), f" ({'; '.join(reasons)})" if reasons else "")
    enc.selection = reasons
    return enc


def _verified_ort_text(clip, cache_dir, threads):
    enc = OnnxRuntimeTextEncoder(clip, cache_dir, threads)
    ref = TorchTextEncoder(clip).encode(list(VERIFY_PROMPTS))
    got = enc.encode(list(VERIFY_PROMPTS))
    cos = float((ref * got).sum(axis=1).min())
    if not cos >= TEXT_MIN_COSINE:
        raise BackendUnavailable(f"onnxruntime text tower disagrees with torch: min cosine "
                                 f"{cos:.6f} < {TEXT_MIN_COSINE}")
    return enc
