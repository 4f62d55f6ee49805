"""Write a tiny, randomly initialised CLIP in open_clip's ``local-dir:`` format.

Tests (and offline demos) load it through the same code path as real weights; nothing is
downloaded. Same architecture family as ViT-B-32 (ViT image tower, causal text transformer
with the standard CLIP tokenizer), just narrow and shallow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence


def tiny_model_config(image_size: int = 64, embed_dim: int = 32, width: int = 64,
                      layers: int = 2, patch_size: int = 16) -> dict:
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width,
                       "patch_size": patch_size, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width,
                     "heads": max(1, width // 32), "layers": layers},
    }


def write_tiny_model(folder: str | os.PathLike, image_size: int = 64, embed_dim: int = 32,
                     seed: int = 0, model_cfg: dict | None = None,
                     transform: Callable | None = None) -> str:
    """Create the model folder (config + ``open_clip_model.safetensors``); returns ``local-dir:...``.

    ``model_cfg`` may be any open_clip model config (e.g. ViT-B-32's) for a full-size random
    model with real FLOPs. ``transform(model)`` may edit the weights in place before saving.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model_cfg or tiny_model_config(image_size=image_size, embed_dim=embed_dim)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    if transform is not None:
        with torch.no_grad():
            transform(model)
    config = {
        "model_cfg": cfg,
        "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                           "std": list(open_clip.OPENAI_DATASET_STD),
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder.resolve()}"


def write_random_vit_b_32(folder: str | os.PathLike, seed: int = 0) -> str:
    """A randomly initialised ViT-B-32 (same FLOPs as the real one) for benchmarks and tests."""
    import open_clip

    return write_tiny_model(folder, seed=seed, model_cfg=open_clip.get_model_config("ViT-B-32"))


# Trained CLIP (like other trained transformers, see SmoothQuant) has a few residual channels
# whose LayerNorm outputs are tens of times larger than the rest, in the same channels in
# every layer. Random weights have none, which hides what they do to int8 activation ranges.
OUTLIER_CHANNELS = (7, 131, 402, 655)
OUTLIER_FACTOR = 40.0


def add_activation_outliers(model, channels: Sequence[int] = OUTLIER_CHANNELS,
                            factor: float = OUTLIER_FACTOR) -> None:
    """Give ``model``'s image tower outlier channels without changing what it computes.

    In every pre-norm LayerNorm that feeds a matrix multiply (each block's ln_1 -> attention
    in-projection, ln_2 -> MLP fc, ln_post -> projection) the gain and bias of ``channels`` are
    multiplied by ``factor`` and the consuming input columns divided by it: the product, hence
    the embedding, is the same up to float rounding; the MatMul inputs now carry outliers.
    """
    import torch

    visual = model.visual
    idx = torch.as_tensor(list(channels), dtype=torch.long)
    if int(idx.max()) >= visual.ln_post.weight.shape[0]:
        raise ValueError(f"outlier channels {tuple(channels)} out of range for width "
                         f"{visual.ln_post.weight.shape[0]}")

    def scale_norm(norm):
        norm.weight[idx] *= factor
        norm.bias[idx] *= factor

    for block in visual.transformer.resblocks:
        scale_norm(block.ln_1)
        block.attn.in_proj_weight[:, idx] /= factor   # (3W, W): input columns
        scale_norm(block.ln_2)
        block.mlp.c_fc.weight[:, idx] /= factor       # Linear (out, in): input columns
    scale_norm(visual.ln_post)
    visual.proj[idx, :] /= factor                      # x @ proj, proj (W, D): input rows


def write_outlier_vit_b_32(folder: str | os.PathLike, seed: int = 0,
                           channels: Sequence[int] = OUTLIER_CHANNELS,
                           factor: float = OUTLIER_FACTOR) -> str:
    """The stress model: ``write_random_vit_b_32``'s weights (same seed) with trained-CLIP-like
    activation outlier channels (``add_activation_outliers``); same function, same FLOPs.
    Every precision decision is checked on it next to the plain random model."""
    import open_clip

    return write_tiny_model(folder, seed=seed, model_cfg=open_clip.get_model_config("ViT-B-32"),
                            transform=lambda m: add_activation_outliers(m, channels, factor))
