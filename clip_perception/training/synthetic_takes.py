"""Takes of synthetic scenes written as an image folder ``train_adapter --image-folder`` reads
(``root/<label>/<take>/<frame>.png``), as a robot lingering on objects records them.

Within a take the frames are near copies (one scene, one light; sensor noise and a slight
flicker). Across takes the scene's other attributes, the texture and the light differ: the
light of a take is drawn from ``LIGHTS`` (a dim room, daylight, a warm lamp, ...), real
variation the zero-shot prompts never name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import synthetic_scenes as scenes

# (gain per RGB channel): the light a take was recorded in
LIGHTS = {"daylight": (1.0, 1.0, 1.0), "dim": (0.55, 0.55, 0.6), "lamp": (1.05, 0.9, 0.65),
          "overcast": (0.8, 0.85, 0.95)}
TAKE_SEED_BASE = 9_000_000


def take_frames(kind: str, take_seed: int, frames: int, size: int, light: str) -> list[np.ndarray]:
    rng = np.random.default_rng(take_seed)
    colour, shape = kind.split(" ")
    scene = scenes.draw_scene(rng, colour=colour, shape=shape)
    base = scenes.render(scene, take_seed, size).astype(np.float32) * np.asarray(LIGHTS[light])
    out = []
    for _ in range(frames):
        img = base * rng.uniform(0.97, 1.03) + rng.normal(0, 2.5, base.shape)
        out.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return out


def write_takes(root: str | os.PathLike, kinds: Sequence[str], takes: int, frames: int,
                seed: int = 0, size: int = 96) -> dict:
    """Write ``takes`` takes of ``frames`` frames per kind (the folder name is the kind, e.g.
    'red circle'); returns {kind: [light of each take]}. Frames are ``size`` px (the model
    resizes them, as a camera frame)."""
    root = Path(root)
    lights = list(LIGHTS)
    record = {}
    for k, kind in enumerate(kinds):
        folder = kind
        record[folder] = []
        for t in range(takes):
            light = lights[(t + k) % len(lights)]
            record[folder].append(light)
            take_dir = root / folder / f"take{t:02d}"
            take_dir.mkdir(parents=True, exist_ok=True)
            take_seed = TAKE_SEED_BASE + seed * 10_000 + k * 100 + t
            for i, img in enumerate(take_frames(kind, take_seed, frames, size, light)):
                cv2.imwrite(str(take_dir / f"{i:03d}.png"), img[..., ::-1])
    return record
