"""Shared fixtures: models are written as local checkpoints and loaded like real weights."""
import numpy as np
import pytest

from clip_perception.core.model import load_clip
from clip_perception.core.tiny_model import write_random_vit_b_32, write_tiny_model


@pytest.fixture(scope="session")
def tiny_model_id(tmp_path_factory):
    """``local-dir:`` identifier of a tiny random CLIP (64 px input, 32-d embeddings)."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_model_id):
    return load_clip(tiny_model_id)


@pytest.fixture(scope="session")
def vit_b_32_clip(tmp_path_factory):
    """A randomly initialised ViT-B-32: real architecture and FLOPs, no download."""
    return load_clip(write_random_vit_b_32(tmp_path_factory.mktemp("vit_b_32")))


def natural_like_image(height, width, seed=0):
    """Smooth gradients, soft blobs and mild texture: resize behaviour like a camera frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = 60 + 80 * np.sin(xx / (37 + 11 * c)) * np.cos(yy / (53 - 7 * c))
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(10, min(height, width) / 3)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-80, 120, size=3)
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
