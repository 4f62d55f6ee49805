"""Where derived artifacts (exported ONNX files, engines) of a model are cached on disk.

The default folder is ``~/.cache/clip_perception``; the environment variable
``CLIP_PERCEPTION_CACHE_DIR`` moves it (the test suite points it at pytest's tmp folder so no
test writes the home directory). An explicit ``cache_dir`` argument always wins over both.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_CACHE_DIR = "~/.cache/clip_perception"
CACHE_DIR_ENV = "CLIP_PERCEPTION_CACHE_DIR"


def default_cache_dir() -> str:
    """The cache folder used when none is given: $CLIP_PERCEPTION_CACHE_DIR, else the home one."""
    return os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(os.path.expanduser(str(cache_dir or default_cache_dir())))


def model_artifact_dir(clip, cache_dir: str | os.PathLike | None = None) -> Path:
    """One folder per (model identifier, weights hash): a changed checkpoint never reuses files."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip.identifier).strip("_")[-80:]
    return cache_root(cache_dir) / f"{safe}-{clip.weights_hash[:16]}"
