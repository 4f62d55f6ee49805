"""Shared fixtures. Training fixtures are session-scoped: the tiny model and bags are written
once into pytest's temporary folder and only read by the tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (training_scenes) import by name


@pytest.fixture(scope="session")
def tiny_model_id(tmp_path_factory):
    from clip_perception.core.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_model_id):
    from clip_perception.core.model import load_clip

    return load_clip(tiny_model_id)


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
