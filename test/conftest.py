"""Shared fixtures: models are written as local checkpoints and loaded like real weights; bags
are written once per session into pytest's temporary folder and only read by the tests.

Plain ``pytest`` (without scripts/run_tests.sh) gets the ROS environment the node tests need,
set here before any test module imports rclpy: a private DDS domain (held by a lock file for
the life of this pytest process, as run_tests.sh does), localhost discovery, the RMW the venv
has, and the Fast DDS profile with the large shared-memory segment. What run_tests.sh or the
caller already exported is kept.
"""
import atexit
import fcntl
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from clip_perception.cli import prefer_passive_openmp

REPO = Path(__file__).resolve().parents[1]
_domain_lock = None  # the open, flock-ed file that holds this run's ROS_DOMAIN_ID


def _claim_ros_domain() -> str:
    """A ROS_DOMAIN_ID in 1..100 no other test run on this machine holds (same lock files as
    scripts/run_tests.sh, so the two never pick the same id)."""
    global _domain_lock
    lock_dir = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / \
        "clip_perception_ros_domains"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for i in range(100):
        domain = (os.getpid() + i) % 100 + 1
        handle = open(lock_dir / f"{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _domain_lock = handle
        atexit.register(handle.close)  # the lock is released when this pytest process ends
        return str(domain)
    raise RuntimeError("all ROS domain ids 1-100 are held by other test runs")


def _set_ros_environment() -> None:
    if not os.environ.get("ROS_DOMAIN_ID"):
        os.environ["ROS_DOMAIN_ID"] = _claim_ros_domain()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = REPO / "config" / "fastdds_shm.xml"
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)  # deprecated name; avoid the warning
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


_set_ros_environment()
prefer_passive_openmp()  # what the node and every tool do (cli/__init__.py), before torch loads


@pytest.fixture(scope="session")
def engine_cache_dir(tmp_path_factory):
    """ONE engine cache folder for the whole session: pass it as ``cache_dir`` (or the node's
    ``engine_cache_dir``) unless the test is about caching, so an engine is exported, quantised
    and timed once per session, not once per test. It is also the default cache of every test
    and node process that names none ($CLIP_PERCEPTION_CACHE_DIR, below)."""
    return tmp_path_factory.mktemp("engine_cache")


@pytest.fixture(scope="session", autouse=True)
def _no_writes_under_home(tmp_path_factory, engine_cache_dir):
    """Nothing a test runs writes the home directory: the default engine cache
    ($CLIP_PERCEPTION_CACHE_DIR, read by core/artifacts.py: the session's engine cache), ROS
    log files and whatever a library keeps under $HOME (OpenVINO's telemetry writes ~/intel) go
    to this session's tmp folder. Set in os.environ, so processes the tests start inherit it."""
    root = tmp_path_factory.mktemp("session_home")
    saved = {k: os.environ.get(k) for k in ("CLIP_PERCEPTION_CACHE_DIR", "ROS_LOG_DIR", "HOME")}
    os.environ["CLIP_PERCEPTION_CACHE_DIR"] = str(engine_cache_dir)
    os.environ["ROS_LOG_DIR"] = str(root / "ros_log")
    os.environ["HOME"] = str(root / "home")
    (root / "home").mkdir()
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _seeded_random():
    """Tests that draw from the global generators draw the same numbers on every run."""
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)

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
