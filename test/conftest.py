"""Shared fixtures: models are written as local checkpoints and loaded like real weights; bags
are written once per session into pytest's temporary folder and only read by the tests."""
import sys
from pathlib import Path

import numpy as np
import pytest

from clip_perception.core.model import load_clip
from clip_perception.core.tiny_model import (write_outlier_vit_b_32, write_random_vit_b_32,
                                             write_tiny_model)

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (training_scenes) import by name


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


@pytest.fixture(scope="session")
def outlier_vit_b_32_clip(tmp_path_factory):
    """The stress model: vit_b_32_clip's weights with trained-CLIP-like activation outlier
    channels (same function); precision decisions are tested on it."""
    return load_clip(write_outlier_vit_b_32(tmp_path_factory.mktemp("outlier_vit_b_32")))


@pytest.fixture(scope="session")
def mcap_bag(tmp_path_factory):
    """rosbag2 (mcap): Image + CompressedImage topics, /label topic, two corrupt messages."""
    from training_scenes import write_rosbag2

    path = tmp_path_factory.mktemp("bags") / "kitchen"
    info = write_rosbag2(path, storage="mcap", corrupt=True)
    return path, info


@pytest.fixture(scope="session")
def sqlite_bag(tmp_path_factory):
    """rosbag2 (sqlite3) without a label topic: labelled by an intervals file."""
    from training_scenes import write_intervals, write_rosbag2

    root = tmp_path_factory.mktemp("bags_sqlite")
    path = root / "hallway"
    info = write_rosbag2(path, storage="sqlite3", seed=1, label_topic=False)
    labels_file = write_intervals(root / "labels.yaml", "hallway", info["schedule"])
    return path, labels_file, info


@pytest.fixture(scope="session")
def ros1_bag(tmp_path_factory):
    from training_scenes import write_ros1_bag

    path = tmp_path_factory.mktemp("bags_ros1") / "yard.bag"
    info = write_ros1_bag(path, seed=2)
    return path, info


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
