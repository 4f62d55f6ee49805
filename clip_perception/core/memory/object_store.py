"""The object collection of the place memory: one row per object (merged observations), beside
the keyframes on the same connection (milvus.py), with the same model record.

A row holds the object's mean embedding (unit; its length before normalising is kept so the
running mean stays exact), its position in the fixed frame (when any observation had depth),
the pose it was seen best from, its observation count and first/last seen stamps. Ids are
random 63-bit integers chosen by the writer, so robots sharing a server memory never collide
and an update is an upsert of the same id.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Iterator, Optional, Sequence

import numpy as np

from .geometry import Pose
from .identity import ModelIdentity
from .milvus import (FRESH_CONSISTENCY, MAX_TEXT, MAX_THUMBNAIL, METRIC, QUERY_CONSISTENCY,
                     Collection, Connection)

OBJECTS_SUFFIX = "_objects"  # the object collection of memory collection C is C + this
_POSE = ("sx", "sy", "sz", "sqx", "sqy", "sqz", "sqw")
ROW_FIELDS = ("id", "mean_length", "has_position", "x", "y", "z", "positioned") + _POSE + (
    "seen_frame_id", "seen_area", "observations", "first_seen_ns", "last_seen_ns", "camera",
    "label")


@dataclass(frozen=True)
class MemoryObject:
    embedding: np.ndarray  # (D,) float32, unit: the direction of the observations' mean
    mean_length: float  # |mean of the observations' unit embeddings| (1.0 for one)
    position: Optional[np.ndarray]  # (3,) in the fixed frame; None: no observation had depth
    positioned: int  # observations that had a position (the position is their mean)
    seen_from: Pose  # camera pose of the best view (largest box), fixed frame
    seen_area: float  # that box's area in pixels
    observations: int
    first_seen_ns: int
    last_seen_ns: int
    camera: str  # camera of the best view
    label: str = ""  # best label of the best view ("" without a label set)
    thumbnail: str = ""  # base64 JPEG of the best view's crop
    object_id: int = 0  # 0 until stored

    def with_id(self) -> "MemoryObject":
        return self if self.object_id else replace(self, object_id=new_object_id())


def new_object_id() -> int:
    return secrets.randbits(63) or 1


def objects_collection(collection: str) -> str:
    return collection + OBJECTS_SUFFIX


def _schema(dim: int, description: str):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                   description=description)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("mean_length", DataType.DOUBLE)
    s.add_field("has_position", DataType.BOOL)
    for name in ("x", "y", "z") + _POSE + ("seen_area",):
        s.add_field(name, DataType.DOUBLE)
    for name in ("positioned", "observations", "first_seen_ns", "last_seen_ns"):
        s.add_field(name, DataType.INT64)
    for name in ("seen_frame_id", "camera", "label"):
        s.add_field(name, DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_THUMBNAIL)
    return s


def _row(o: MemoryObject) -> dict:
    pos = (0.0, 0.0, 0.0) if o.position is None else tuple(float(v) for v in o.position)
    pose = tuple(o.seen_from.position) + tuple(o.seen_from.orientation)
    row = {"id": int(o.object_id), "embedding": np.asarray(o.embedding, np.float32).tolist(),
           "mean_length": float(o.mean_length), "has_position": o.position is not None,
           "x": pos[0], "y": pos[1], "z": pos[2], "positioned": int(o.positioned),
           "seen_frame_id": o.seen_from.frame_id[:MAX_TEXT], "seen_area": float(o.seen_area),
           "observations": int(o.observations), "first_seen_ns": int(o.first_seen_ns),
           "last_seen_ns": int(o.last_seen_ns), "camera": o.camera[:MAX_TEXT],
           "label": o.label[:MAX_TEXT], "thumbnail": o.thumbnail}
    row.update({k: float(v) for k, v in zip(_POSE, pose)})
    return row


def _object(row: dict) -> MemoryObject:
    vec = row.get("embedding")
    return MemoryObject(
        embedding=np.asarray(vec if vec is not None else (), np.float32),
        mean_length=float(row["mean_length"]),
        position=np.array([row["x"], row["y"], row["z"]]) if row["has_position"] else None,
        positioned=int(row["positioned"]),
        seen_from=Pose((row["sx"], row["sy"], row["sz"]),
                       (row["sqx"], row["sqy"], row["sqz"], row["sqw"]), row["seen_frame_id"]),
        seen_area=float(row["seen_area"]), observations=int(row["observations"]),
        first_seen_ns=int(row["first_seen_ns"]), last_seen_ns=int(row["last_seen_ns"]),
        camera=row["camera"], label=row["label"], thumbnail=row.get("thumbnail", ""),
        object_id=int(row["id"]))


def box_filter(lo: np.ndarray, hi: np.ndarray, positioned: bool = True) -> str:
    """A Milvus filter: objects with a position inside the axis-aligned box [lo, hi], or
    (``positioned=False``) objects without one seen from a camera pose inside it."""
    names = ("x", "y", "z") if positioned else _POSE[:3]
    parts = ["has_position == " + ("true" if positioned else "false")]
    for name, a, b in zip(names, lo, hi):
        parts.append(f"{name} >= {float(a)!r} and {name} <= {float(b)!r}")
    return " and ".join(parts)


class ObjectStore(Collection):
    """Objects of one model. Thread-safe (the connection's lock)."""

    def __init__(self, connection: Connection, model: ModelIdentity, collection: str):
        super().__init__(connection, model, collection, _schema)

    def upsert(self, objects: Sequence[MemoryObject]) -> list[MemoryObject]:
        """Write new and updated objects; returns them with their ids."""
        objects = [o.with_id() for o in objects]
        if not objects:
            return []
        for o in objects:
            self.check_row(o.embedding, o.thumbnail, "object")
        with self._lock:
            self._call(self._client.upsert, self.collection, [_row(o) for o in objects])
            self._wrote(len(objects))
        return objects

    def search(self, queries: np.ndarray, limit: int, where: str = "",
               with_thumbnails: bool = False, fresh: bool = False) -> list[list[MemoryObject]]:
        """The ``limit`` nearest objects (cosine) per query row among those matching the
        filter ``where``, best first, with their embeddings. ``fresh``: see every row written
        so far (the recorder's merge; see milvus.QUERY_CONSISTENCY)."""
        queries = self.check_queries(queries)
        fields = list(ROW_FIELDS) + ["embedding"] + (["thumbnail"] if with_thumbnails else [])
        with self._lock:
            hits = self._call(self._client.search, self.collection, data=queries.tolist(),
                              filter=where, limit=limit, anns_field="embedding",
                              search_params={"metric_type": METRIC}, output_fields=fields,
                              consistency_level=FRESH_CONSISTENCY if fresh else
                              QUERY_CONSISTENCY)
        return [[_object(dict(h["entity"], id=h["id"])) for h in per_query]
                for per_query in hits]

    def thumbnails(self, ids: Sequence[int]) -> dict[int, str]:
        """The stored thumbnails of these objects (candidates are fetched without them)."""
        if not ids:
            return {}
        with self._lock:
            rows = self._call(self._client.get, self.collection, ids=[int(i) for i in ids],
                              output_fields=["thumbnail"])
        return {int(r["id"]): r.get("thumbnail", "") for r in rows}

    def iter_objects(self, batch: int = 1000) -> Iterator[MemoryObject]:
        """Every object without embedding or thumbnail (for markers and listings)."""
        return (_object(r) for r in self.iter_rows(ROW_FIELDS, batch))


def open_object_store(keyframes) -> ObjectStore:
    """The objects beside a KeyframeStore: same connection, same model, collection + suffix."""
    return ObjectStore(keyframes.conn, keyframes.model, objects_collection(keyframes.collection))
