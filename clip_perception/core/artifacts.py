"""Where derived artifacts (exported ONNX files, engines) of a model are cached on disk."""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_CACHE_DIR = "~/.cache/clip_perception"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(os.path.expanduser(str(cache_dir or DEFAULT_CACHE_DIR)))


def model_artifact_dir(clip, cache_dir: str | os.PathLike | None = None) -> Path:
    """One folder per (model identifier, weights hash): a changed checkpoint never reuses files."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip.identifier).strip("_")[-80:]
    return cache_root(cache_dir) / f"{safe}-{clip.weights_hash[:16]}"
