"""Lighting augmentation (albumentations) for training, and the fixed lighting conditions the
evaluation judges every head under.

Training draws are deterministic per (pipeline, seed, frame, draw index): each draw reseeds the
pipeline from those, so a draw is the same image in every run, whatever the frame order or
subsampling — which is what lets the feature cache key a draw by name instead of by pixels.
The pipeline is configured in albumentations' own serialisation (``A.save``/``A.load``, YAML or
JSON) and saved beside the head the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .data import TrainingInputError


def default_pipeline():
    """Lighting-only changes a robot camera sees: exposure, gamma, colour temperature, tint,
    shadows, uneven light, low-light sensor noise, blur. No geometry: labels are per frame."""
    import albumentations as A

    return A.Compose([
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=(-0.5, 0.35), contrast_limit=(-0.4, 0.25), p=1.0),
            A.RandomGamma(gamma_limit=(60, 250), p=1.0),
        ], p=0.9),
        A.OneOf([
            A.PlanckianJitter(mode="blackbody", p=1.0),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=30, val_shift_limit=0, p=1.0),
        ], p=0.7),
        A.RandomShadow(num_shadows_limit=(1, 2), shadow_intensity_range=(0.3, 0.7), p=0.3),
        A.Illumination(intensity_range=(0.05, 0.2), p=0.3),
        A.OneOf([
            A.GaussNoise(std_range=(0.02, 0.12), p=1.0),
            A.ISONoise(color_shift=(0.01, 0.05), intensity=(0.1, 0.5), p=1.0),
        ], p=0.4),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5), p=1.0),
            A.MotionBlur(blur_limit=(3, 7), p=1.0),
        ], p=0.25),
    ])


def load_pipeline(path: str | os.PathLike):
    """An albumentations pipeline saved with ``A.save`` (format from the suffix: .yaml/.yml or .json)."""
    import albumentations as A

    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise TrainingInputError(f"augmentation config not found: {path}")
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        pipeline = A.load(str(path), data_format=fmt)
    except Exception as exc:
        raise TrainingInputError(f"augmentation config {path} is not an albumentations pipeline "
                                 f"in A.save's {fmt} format: {exc}") from exc
    if not isinstance(pipeline, A.Compose):
        raise TrainingInputError(f"augmentation config {path} holds a {type(pipeline).__name__}; "
                                 "expected a Compose at the top")
    return pipeline


@dataclass
class Augmenter:
    pipeline: object  # albumentations.Compose
    seed: int = 0
    draws: int = 8

    def __post_init__(self):
        if self.draws < 0:
            raise TrainingInputError(f"augmentation draws per frame must be >= 0, got {self.draws}")
        self.serialised = self._to_dict()
        text = json.dumps(self.serialised, sort_keys=True)
        self.pipeline_hash = hashlib.sha256(text.encode()).hexdigest()[:16]

    def _to_dict(self) -> dict:
        import albumentations as A

        return A.to_dict(self.pipeline)

    def draw_key(self, k: int) -> str:
        return f"aug/{self.pipeline_hash}/{self.seed}/{k}"

    def _draw_seed(self, digest: str, k: int) -> int:
        h = hashlib.blake2b(f"{self.seed}/{digest}/{k}".encode(), digest_size=4).digest()
        return int.from_bytes(h, "little")

    def apply(self, crop: np.ndarray, digest: str, k: int) -> np.ndarray:
        self.pipeline.set_random_seed(self._draw_seed(digest, k))
        return self.pipeline(image=crop)["image"]

    def save(self, path: str | os.PathLike) -> Path:
        """Albumentations' own serialisation (JSON), loadable with ``A.load``."""
        import albumentations as A

        path = Path(path)
        A.save(self.pipeline, str(path), data_format="json")
        return path

    def describe(self) -> dict:
        return {"library": "albumentations", "pipeline_sha256_16": self.pipeline_hash,
                "seed": self.seed, "draws_per_frame": self.draws, "pipeline": self.serialised}


# ---- fixed evaluation conditions ------------------------------------------------------------
# Deterministic (no randomness except the noise, seeded per frame) so every head is judged on
# the same pixels. Bump CONDITIONS_VERSION when a condition changes: it keys the feature cache.
CONDITIONS_VERSION = 2  # 2: the 'shadow' condition


def _gain(img: np.ndarray, gains, offset: float = 0.0) -> np.ndarray:
    out = img.astype(np.float32) * np.asarray(gains, np.float32) + offset
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _noise(img: np.ndarray, digest: str, scale: float, sigma: float) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(digest.encode(), digest_size=4).digest(), "little")
    noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) * scale + noise + 0.5, 0, 255).astype(np.uint8)


def _shadow(img: np.ndarray, digest: str) -> np.ndarray:
    """A cast shadow: a straight-edged region over 35-60 % of the frame (an object or wall
    between the light and the scene) at 40 % of the light with a cooler tint (shade is lit by
    the sky), its edge a soft penumbra; where and at what angle come from ``digest``."""
    import cv2

    h, w = img.shape[:2]
    rng = np.random.default_rng(int.from_bytes(
        hashlib.blake2b(("shadow/" + digest).encode(), digest_size=4).digest(), "little"))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    side = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
    cut = np.quantile(side, rng.uniform(0.35, 0.6))
    mask = (side < cut).astype(np.float32)
    k = max(3, int(0.08 * min(h, w)) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None]
    shade = np.array([0.38, 0.4, 0.46], np.float32)
    out = img.astype(np.float32) * (1 - mask + mask * shade)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {
    "original": lambda img, digest: img,
    "dark": lambda img, digest: _gain(img, (0.35, 0.35, 0.35)),
    "bright": lambda img, digest: _gain(img, (1.5, 1.5, 1.5), 40.0),
    "warm": lambda img, digest: _gain(img, (1.2, 1.0, 0.7)),
    "cool": lambda img, digest: _gain(img, (0.75, 0.95, 1.25)),
    "low_light_noise": lambda img, digest: _noise(img, digest, 0.3, 10.0),
    "shadow": _shadow,
}


def condition_key(name: str) -> str:
    return "original" if name == "original" else f"cond/{name}/{CONDITIONS_VERSION}"
