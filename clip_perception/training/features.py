"""Frozen CLIP image features of frames and their augmented/conditioned views, cached on disk.

The cache is one SQLite file per model folder (``<cache_dir>/<model>-<weights hash>/``, the same
folder the engine cache uses). Each entry's key hashes the model identifier, weights hash,
encoder backend and precision, preprocessing, the frame's content digest and the view
(original, an augmentation draw, an evaluation condition), so a second run with other head
settings never runs the encoder again, a changed checkpoint never reuses features, and a head
is always trained and judged on features of the engine it names in its report.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..core.artifacts import model_artifact_dir
from ..core.preprocess import DEFAULT_RESIZE, Preprocessor
from .data import Frame

logger = logging.getLogger(__name__)

Transform = Optional[Callable[[np.ndarray, str], np.ndarray]]  # (crop, digest) -> crop


class FeatureCache:
    """key -> float32 vector in one SQLite file (safe to interrupt: committed per batch)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("CREATE TABLE IF NOT EXISTS features "
                         "(key TEXT PRIMARY KEY, dim INTEGER NOT NULL, data BLOB NOT NULL)")
        self._db.commit()

    @classmethod
    def for_model(cls, clip, cache_dir=None) -> "FeatureCache":
        return cls(model_artifact_dir(clip, cache_dir) / "features.sqlite")

    def get_many(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        out = {}
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = list(keys[i:i + 500])
            rows = self._db.execute(
                f"SELECT key, dim, data FROM features WHERE key IN ({','.join('?' * len(chunk))})",
                chunk).fetchall()
            for key, d, data in rows:
                if d == dim and len(data) == 4 * dim:  # anything else is stale: re-encode it
                    out[key] = np.frombuffer(data, np.float32).copy()
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO features (key, dim, data) VALUES (?, ?, ?)",
                             [(k, int(v.shape[0]), np.ascontiguousarray(v, np.float32).tobytes())
                              for k, v in items.items()])
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass
class ViewJob:
    """Embed every frame under one view: ``view`` names it in the cache key, ``transform``
    makes its pixels (None = the crop as is)."""

    frames: Sequence[Frame]
    view: str
    transform: Transform = None


class FeatureExtractor:
    def __init__(self, clip, encoder, cache: FeatureCache | None = None, batch_size: int = 32,
                 progress: bool | None = None, resize: str = DEFAULT_RESIZE):
        """``resize``: the preprocessing resize method that made the frames' crops (part of the
        cache key: the crops are made before the extractor sees them)."""
        self.encoder = encoder
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress
        self.dim = clip.embed_dim
        self.preprocessor = Preprocessor(clip.preprocess)
        self._key_prefix = json.dumps([clip.identifier, clip.weights_hash,
                                       getattr(encoder, "name", "torch"),
                                       getattr(encoder, "precision", "fp32"),
                                       clip.preprocess.to_dict(), resize],
                                      sort_keys=True)
        self.hits = 0
        self.encoded = 0

    def key(self, frame: Frame, view: str) -> str:
        return hashlib.sha256(f"{self._key_prefix}|{frame.digest}|{view}".encode()).hexdigest()

    def embed(self, jobs: Sequence[ViewJob], desc: str = "encoding") -> list[np.ndarray]:
        """One (N_job, D) L2-normalised array per job; cached views are not encoded again."""
        from tqdm import tqdm

        keys = [[self.key(f, job.view) for f in job.frames] for job in jobs]
        found = self.cache.get_many([k for ks in keys for k in ks], self.dim) if self.cache else {}
        todo = [(job, f, k) for job, ks in zip(jobs, keys) for f, k in zip(job.frames, ks)
                if k not in found]
        todo = list({k: (job, f, k) for job, f, k in todo}.values())  # same view twice: once
        self.hits += sum(len(ks) for ks in keys) - len(todo)
        with tqdm(total=len(todo), desc=desc, unit="img", disable=self._disable(), leave=False) as bar:
            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i:i + self.batch_size]
                crops = np.stack([job.transform(f.crop, f.digest) if job.transform else f.crop
                                  for job, f, _ in chunk])
                emb = self.encoder.encode_images(self.preprocessor.normalize(crops))
                fresh = {k: e for (_, _, k), e in zip(chunk, emb)}
                found.update(fresh)
                if self.cache is not None:
                    self.cache.put_many(fresh)
                self.encoded += len(chunk)
                bar.update(len(chunk))
        return [np.stack([found[k] for k in ks]) if ks else np.zeros((0, self.dim), np.float32)
                for ks in keys]

    def _disable(self):
        return None if self.progress is None else not self.progress  # None: tqdm decides (tty)


class FeatureTable:
    """Embeddings of one view looked up by frame (subsets pick their rows from one array)."""

    def __init__(self, frames: Sequence[Frame], x: np.ndarray):
        self._row = {id(f): i for i, f in enumerate(frames)}
        self.x = x

    def of(self, frames: Sequence[Frame]) -> np.ndarray:
        return self.x[[self._row[id(f)] for f in frames]] if frames else self.x[:0]
