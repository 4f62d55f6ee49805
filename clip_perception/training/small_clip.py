"""Train the small CLIP on synthetic scenes with open_clip's own contrastive loss, and write it
as a ``local-dir:`` folder that ``core.model.load_clip`` loads like any other model.

Seeded and reproducible on one machine: the scenes, captions and batch order come from the
seed; torch runs with a fixed thread count (1 by default). The weights are stored in float16 (open_clip
loads them into its float32 model): the 49408-row token embedding (2.4 MB) dominates the size,
so the text tower is narrow (width 24) and the image tower's width (12) is the widest that keeps
the file under 4 MiB (3.94 MB).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import synthetic_scenes as scenes

logger = logging.getLogger(__name__)

IMAGE_SIZE = 64
VISION_WIDTH = 12  # the widest image tower under 4 MiB (8 named 20 % of shapes after 900 steps)


def small_clip_config(image_size: int = IMAGE_SIZE, vision_width: int = VISION_WIDTH) -> dict:
    """open_clip model config: a narrow ModifiedResNet image tower (convolutions learn shapes
    in minutes where a ViT of this size learnt only colours), a narrow causal text tower.
    Width 12 with 3600 steps names 87 % of held-out shapes; the first model (width 8, a 4-channel
    stem, 900 steps) named 20 %, 55 % at 1800 steps, and width 12 at 1800 steps 67 %
    (docs/results/accuracy.md, "Making the small CLIP know shapes")."""
    return {
        "embed_dim": 64,
        "vision_cfg": {"image_size": image_size, "layers": [1, 1, 1, 1], "width": vision_width,
                       "head_width": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 24, "heads": 2,
                     "layers": 2},
    }


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 0
    steps: int = 3600
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 60
    threads: int = 1
    pool: int = 16000  # scenes rendered once; captions are drawn anew every time one is used
    hard_share: float = 0.3  # batches of one or two colours (or shapes): the rest must tell
    vision_width: int = VISION_WIDTH


def _seed_everything(seed: int, threads: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def render_pool(n: int, seed: int, image_size: int = IMAGE_SIZE):
    """(scenes, uint8 images NxHxWx3) of ``n`` training scenes (held-out pairs excluded)."""
    rng = np.random.default_rng(seed)
    drawn = [scenes.draw_scene(rng) for _ in range(n)]
    images = np.stack([scenes.render(s, seed * 1_000_003 + i, image_size)
                       for i, s in enumerate(drawn)])
    return drawn, images


def _attribute_groups(pool_scenes) -> dict:
    """{attribute: {value: pool indices}} for the colour and the shape."""
    groups: dict = {"colour": {}, "shape": {}}
    for i, scene in enumerate(pool_scenes):
        for attribute in groups:
            groups[attribute].setdefault(scene.attribute(attribute), []).append(i)
    return {a: {v: np.array(ix) for v, ix in g.items()} for a, g in groups.items()}


def _batch(rng: np.random.Generator, groups: dict, n: int, size: int, hard_share: float):
    """Indices of one batch: uniform, or (``hard_share`` of the batches) scenes of one or two
    colours or shapes only, so a caption must be matched by the other attributes (colour alone
    is learnt first and would otherwise carry the loss)."""
    if rng.random() >= hard_share:
        return rng.choice(n, size, replace=False)
    attribute = ("colour", "shape")[int(rng.integers(2))]
    values = list(groups[attribute])
    chosen = rng.choice(len(values), int(rng.integers(1, 3)), replace=False)
    rows = np.concatenate([groups[attribute][values[c]] for c in chosen])
    return rng.choice(rows, min(size, len(rows)), replace=False)


def _normalise(images: np.ndarray, mean, std):
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def train(settings: TrainSettings, log_every: int = 50):
    """The trained open_clip model (eval mode) and a record of the run."""
    import open_clip
    import torch
    from open_clip.loss import ClipLoss

    _seed_everything(settings.seed, settings.threads)
    start = time.perf_counter()
    pool_scenes, pool_images = render_pool(settings.pool, settings.seed)
    render_s = time.perf_counter() - start
    cfg = small_clip_config(vision_width=settings.vision_width)
    model = open_clip.CLIP(**cfg)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=settings.lr)
    loss_fn = ClipLoss()
    rng = np.random.default_rng(settings.seed + 1)
    groups = _attribute_groups(pool_scenes)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    losses = []
    model.train()
    for step in range(settings.steps):
        lr = settings.lr * min(1.0, (step + 1) / settings.warmup) * \
            0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = _batch(rng, groups, len(pool_scenes), settings.batch, settings.hard_share)
        images = _normalise(pool_images[idx], mean, std)
        texts = tokenizer([scenes.caption(pool_scenes[i], rng) for i in idx])
        image_f, text_f, scale = model(images, texts)
        loss = loss_fn(image_f, text_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            logger.info("step %d/%d loss %.3f (mean of last %d) logit scale %.1f, %.0f s",
                        step + 1, settings.steps, float(np.mean(losses[-log_every:])), log_every,
                        float(scale), time.perf_counter() - start)
    model.eval()
    record = {"settings": asdict(settings), "model_cfg": cfg, "render_seconds": round(render_s, 1),
              "train_seconds": round(time.perf_counter() - start - render_s, 1),
              "final_loss": round(float(np.mean(losses[-50:])), 4),
              "logit_scale": round(float(model.logit_scale.exp()), 2),
              "torch_threads": settings.threads}
    return model, record


def save_small_clip(model, folder: str | os.PathLike, record: dict) -> str:
    """Write ``folder`` (open_clip_config.json, float16 open_clip_model.safetensors,
    training.json); returns the ``local-dir:`` identifier."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": record["model_cfg"],
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                 "std": list(open_clip.OPENAI_DATASET_STD),
                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    (folder / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return f"local-dir:{folder.resolve()}"
