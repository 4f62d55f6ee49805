"""Write a tiny, randomly initialised CLIP in open_clip's ``local-dir:`` format.

Tests (and offline demos) load it through the same code path as real weights; nothing is
downloaded. Same architecture family as ViT-B-32 (ViT image tower, causal text transformer
with the standard CLIP tokenizer), just narrow and shallow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


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
                     seed: int = 0, model_cfg: dict | None = None) -> str:
    """Create the model folder (config + ``open_clip_model.safetensors``); returns ``local-dir:...``.

    ``model_cfg`` may be any open_clip model config (e.g. ViT-B-32's) for a full-size random
    model with real FLOPs.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model_cfg or tiny_model_config(image_size=image_size, embed_dim=embed_dim)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
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
