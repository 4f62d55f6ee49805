"""THE keyframe collection of the place memory (Milvus, see milvus.py): keyframes in, the
nearest keyframes of a query out, with their vectors for exact re-scoring.

The collection records which model made its embeddings (identifier, weights hash, size) as
collection properties (identity.py); opening it with another model raises ModelMismatch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from .geometry import Pose
from .identity import ModelIdentity
from .milvus import (DEFAULT_URI, FLUSH_EVERY, FRESH_CONSISTENCY, MAX_TEXT, MAX_THUMBNAIL,
                     METRIC, QUERY_CONSISTENCY, Collection, Connection, resolve_uri,
                     stored_identity as _stored_identity, unit_rows)

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_URI", "FLUSH_EVERY", "Candidates", "Keyframe",
           "KeyframeStore", "ModelIdentity", "open_store", "resolve_uri", "stored_identity"]

DEFAULT_COLLECTION = "places"
# Everything but the vector: what a place needs to be reported.
ROW_FIELDS = ("id", "x", "y", "z", "qx", "qy", "qz", "qw", "frame_id", "stamp_ns", "camera")


@dataclass(frozen=True)
class Keyframe:
    embedding: np.ndarray  # (D,) float32, L2-normalised
    pose: Pose  # in the fixed frame
    stamp_ns: int  # the image's header.stamp
    camera: str
    thumbnail: str = ""  # base64 JPEG (see thumbnails.py)
    keyframe_id: int = 0  # assigned by the store on insert


@dataclass
class Candidates:
    """Keyframes returned by a search, with their vectors for exact re-scoring."""

    keyframes: list[Keyframe] = field(default_factory=list)

    def matrix(self) -> np.ndarray:
        return np.stack([k.embedding for k in self.keyframes]).astype(np.float32)


def _schema(dim: int, description: str):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False,
                                   description=description)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    for name in ("x", "y", "z", "qx", "qy", "qz", "qw"):
        s.add_field(name, DataType.DOUBLE)
    s.add_field("frame_id", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("stamp_ns", DataType.INT64)
    s.add_field("camera", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_THUMBNAIL)
    return s


def _row(k: Keyframe) -> dict:
    (x, y, z), (qx, qy, qz, qw) = k.pose.position, k.pose.orientation
    return {"embedding": unit_rows(k.embedding)[0].tolist(), "x": x, "y": y, "z": z,
            "qx": qx, "qy": qy, "qz": qz, "qw": qw, "frame_id": k.pose.frame_id[:MAX_TEXT],
            "stamp_ns": int(k.stamp_ns), "camera": k.camera[:MAX_TEXT],
            "thumbnail": k.thumbnail}


def _keyframe(row: dict) -> Keyframe:
    vec = row.get("embedding")
    return Keyframe(
        embedding=np.asarray(vec if vec is not None else (), np.float32),
        pose=Pose((row["x"], row["y"], row["z"]), (row["qx"], row["qy"], row["qz"], row["qw"]),
                  row["frame_id"]),
        stamp_ns=int(row["stamp_ns"]), camera=row["camera"],
        thumbnail=row.get("thumbnail", ""), keyframe_id=int(row["id"]))


class KeyframeStore(Collection):
    """Keyframes of one model in one collection. Thread-safe (one client, one lock)."""

    def __init__(self, uri: str, model: ModelIdentity, collection: str = DEFAULT_COLLECTION,
                 token: str = "", connection: Optional[Connection] = None):
        # its own connection unless given one (the object collection shares the keyframes')
        super().__init__(connection or Connection(uri, token), model, collection, _schema)

    # ---- writes --------------------------------------------------------------------------------
    def insert(self, keyframes: Sequence[Keyframe]) -> list[int]:
        if not keyframes:
            return []
        for k in keyframes:
            self.check_row(k.embedding, k.thumbnail, "keyframe")
        with self._lock:
            result = self._call(self._client.insert, self.collection,
                                [_row(k) for k in keyframes])
            self._wrote(len(keyframes))
        return [int(i) for i in result["ids"]]

    # ---- reads ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, limit: int, fresh: bool = False
               ) -> list[list[Keyframe]]:
        """The ``limit`` nearest keyframes (cosine) for each query row, best first, with their
        embeddings (one call: re-scoring needs no second round trip). ``fresh``: wait until
        every row written so far is searchable (see milvus.QUERY_CONSISTENCY)."""
        queries = self.check_queries(queries)
        with self._lock:
            hits = self._call(self._client.search, self.collection, data=queries.tolist(),
                              limit=limit, anns_field="embedding",
                              search_params={"metric_type": METRIC},
                              output_fields=list(ROW_FIELDS) + ["embedding"],
                              consistency_level=FRESH_CONSISTENCY if fresh else
                              QUERY_CONSISTENCY)
        return [[_keyframe(dict(h["entity"], id=h["id"])) for h in per_query]
                for per_query in hits]

    def get(self, ids: Sequence[int], with_thumbnails: bool = False) -> list[Keyframe]:
        """The keyframes with these ids, with their embeddings."""
        if not ids:
            return []
        fields = list(ROW_FIELDS) + ["embedding"] + (["thumbnail"] if with_thumbnails else [])
        with self._lock:
            rows = self._call(self._client.get, self.collection, ids=[int(i) for i in ids],
                              output_fields=fields)
        return [_keyframe(r) for r in rows]

    def iter_keyframes(self, batch: int = 1000) -> Iterator[Keyframe]:
        """Every keyframe without embedding or thumbnail (for markers and listings)."""
        return (_keyframe(r) for r in self.iter_rows(ROW_FIELDS, batch))


def stored_identity(uri: str, collection: str = DEFAULT_COLLECTION,
                    token: Optional[str] = None) -> ModelIdentity:
    """The model a memory was built with, read without loading any model."""
    return _stored_identity(uri, collection, token)


def open_store(uri: str, model: ModelIdentity, collection: str = DEFAULT_COLLECTION,
               token: Optional[str] = None) -> KeyframeStore:
    return KeyframeStore(uri, model, collection, token or os.environ.get("MILVUS_TOKEN", ""))
