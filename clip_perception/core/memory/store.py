"""THE vector store of the place memory: keyframes in a Milvus collection (pymilvus client).

One module owns the choice. The same ``MilvusClient`` code serves two deployments:
- a local file (``~/.local/share/clip_perception/places.db``): Milvus Lite, embedded, no
  server, survives restarts;
- a server URI (``http://fleet-memory:19530``, optional token): one memory shared by robots.

The collection records which model made its embeddings (identifier, weights hash, size) as
collection properties; opening it with another model raises ModelMismatch with both named,
because cosines between two models' embeddings mean nothing.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from ..embeddings import l2_normalize
from .errors import ModelMismatch, StoreError
from .geometry import Pose

logger = logging.getLogger(__name__)

DEFAULT_URI = "~/.local/share/clip_perception/memory"  # a folder: <folder>/places.db
DB_NAME = "places.db"
DEFAULT_COLLECTION = "places"
SCHEMA_VERSION = "1"
PROP_PREFIX = "clip_perception."
MAX_TEXT = 512
MAX_THUMBNAIL = 65535  # Milvus VARCHAR limit; thumbnails are base64 JPEG, a few KB
# Inner product over L2-normalised vectors is the cosine; COSINE would make Milvus Lite 3.x
# re-normalise every stored vector on every query (~40 % of its search time, profiled here).
METRIC = "IP"
# Milvus Lite searches its unsealed ("growing") rows far slower than sealed ones (measured:
# 10k growing rows 1.5 s per query, sealed 0.13 s; benchmarks/MEMORY_RESULTS.md), so the store
# seals after this many inserted rows; a query then sees at most this many unsealed.
FLUSH_EVERY = 500
# Everything but the vector: what a place needs to be reported.
ROW_FIELDS = ("id", "x", "y", "z", "qx", "qy", "qz", "qw", "frame_id", "stamp_ns", "camera")


@dataclass(frozen=True)
class ModelIdentity:
    """What makes embeddings comparable: the weights (hash) and their size."""

    identifier: str
    weights_hash: str
    embed_dim: int
    load: tuple[str, str] = ("", "")  # load_clip's (model, pretrained): query tools need no --model

    @classmethod
    def of(cls, clip) -> "ModelIdentity":
        return cls(clip.identifier, clip.weights_hash, int(clip.embed_dim),
                   (clip.model_name, clip.pretrained or ""))

    def properties(self) -> dict[str, str]:
        return {PROP_PREFIX + "model": self.identifier, PROP_PREFIX + "weights": self.weights_hash,
                PROP_PREFIX + "dim": str(self.embed_dim), PROP_PREFIX + "schema": SCHEMA_VERSION,
                PROP_PREFIX + "load_model": self.load[0],
                PROP_PREFIX + "load_pretrained": self.load[1]}

    @classmethod
    def from_properties(cls, props: dict, where: str) -> "ModelIdentity":
        try:
            return cls(props[PROP_PREFIX + "model"], props[PROP_PREFIX + "weights"],
                       int(props[PROP_PREFIX + "dim"]),
                       (props.get(PROP_PREFIX + "load_model", ""),
                        props.get(PROP_PREFIX + "load_pretrained", "")))
        except (KeyError, ValueError) as exc:
            raise StoreError(f"{where} exists but has no clip_perception model record ({exc}); "
                             f"it was not made by clip_perception, use another collection") \
                from None

    def require_same(self, stored: "ModelIdentity", where: str) -> None:
        if stored.weights_hash != self.weights_hash or stored.embed_dim != self.embed_dim:
            raise ModelMismatch(
                f"{where} was built with model {stored.identifier} (weights "
                f"{stored.weights_hash[:12]}, {stored.embed_dim}-d) but this is "
                f"{self.identifier} (weights {self.weights_hash[:12]}, {self.embed_dim}-d); "
                f"embeddings of different models cannot be compared: use that model, another "
                f"memory.uri/collection, or clear the memory")


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


def resolve_uri(uri: str) -> str:
    """A server URI stays as is; a '.db' path is the Milvus Lite file; any other path is a
    memory folder holding places.db (created if missing)."""
    uri = (uri or DEFAULT_URI).strip()
    if uri.startswith(("http://", "https://", "tcp://", "unix:")):
        return uri
    path = Path(os.path.expanduser(uri))
    if path.suffix != ".db":
        if path.is_file():
            raise StoreError(f"memory '{uri}' is a file but not a Milvus Lite '.db' file; "
                             f"expected a folder, a '.db' file or a server URI like "
                             f"http://host:19530")
        path = path / DB_NAME  # a memory folder
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path.resolve())


def _schema(dim: int):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    for name in ("x", "y", "z", "qx", "qy", "qz", "qw"):
        s.add_field(name, DataType.DOUBLE)
    s.add_field("frame_id", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("stamp_ns", DataType.INT64)
    s.add_field("camera", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_THUMBNAIL)
    return s


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (the store ranks by inner product); a zero row is refused."""
    v = np.atleast_2d(np.asarray(v, np.float32))
    if not np.all(np.any(v != 0, axis=1)):
        raise StoreError("an embedding of all zeros has no direction; expected a CLIP embedding")
    return l2_normalize(v)


def _row(k: Keyframe) -> dict:
    (x, y, z), (qx, qy, qz, qw) = k.pose.position, k.pose.orientation
    return {"embedding": _unit(k.embedding)[0].tolist(), "x": x, "y": y, "z": z,
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


class KeyframeStore:
    """Keyframes of one model in one collection. Thread-safe (one client, one lock)."""

    def __init__(self, uri: str, model: ModelIdentity, collection: str = DEFAULT_COLLECTION,
                 token: str = ""):
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        self._errors = (MilvusException,)
        self.uri = resolve_uri(uri)
        self.collection = collection
        self.model = model
        self.where = f"memory {self.uri} collection '{collection}'"
        self._lock = threading.Lock()
        self._unsealed = 0
        try:
            self._client = MilvusClient(self.uri, token=token) if token else \
                MilvusClient(self.uri)
        except Exception as exc:  # pymilvus raises config, connection and gRPC errors here
            raise StoreError(f"cannot open {self.where}: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._call(self._open_or_create)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _open_or_create(self) -> None:
        c = self._client
        if c.has_collection(self.collection):
            props = c.describe_collection(self.collection).get("properties", {})
            self.model.require_same(ModelIdentity.from_properties(props, self.where), self.where)
        else:
            self._create()
        c.load_collection(self.collection)

    def _create(self) -> None:
        c = self._client
        index = c.prepare_index_params()
        # Milvus Lite serves FLAT (exact); a server may be given another index with the same
        # client code. Exact search keeps query results identical across both.
        index.add_index(field_name="embedding", index_type="FLAT", metric_type=METRIC)
        c.create_collection(self.collection, schema=_schema(self.model.embed_dim),
                            consistency_level="Strong")
        # sync=False: waiting for the index calls AllocTimestamp, which Milvus Lite lacks (it
        # logged a traceback); a FLAT index has nothing to build anyway
        c.create_index(self.collection, index, sync=False)
        c.alter_collection_properties(self.collection, properties=self.model.properties())
        logger.info("created %s for %s (%d-d)", self.where, self.model.identifier,
                    self.model.embed_dim)

    # ---- writes --------------------------------------------------------------------------------
    def insert(self, keyframes: Sequence[Keyframe]) -> list[int]:
        if not keyframes:
            return []
        for k in keyframes:
            shape = np.shape(k.embedding)
            if shape != (self.model.embed_dim,):
                raise StoreError(f"keyframe embedding has shape {shape}, expected "
                                 f"({self.model.embed_dim},) for {self.model.identifier}")
            if len(k.thumbnail) > MAX_THUMBNAIL:
                raise StoreError(f"thumbnail is {len(k.thumbnail)} characters, at most "
                                 f"{MAX_THUMBNAIL} fit")
        with self._lock:
            result = self._call(self._client.insert, self.collection,
                                [_row(k) for k in keyframes])
            self._unsealed += len(keyframes)
            if self._unsealed >= FLUSH_EVERY:
                self._flush()
        return [int(i) for i in result["ids"]]

    def clear(self) -> int:
        """Remove every keyframe (the model record stays); returns how many there were."""
        with self._lock:
            n = self._count()
            self._call(self._client.drop_collection, self.collection)
            self._call(self._open_or_create)
        return n

    # ---- reads ---------------------------------------------------------------------------------
    def _count(self) -> int:
        rows = self._call(self._client.query, self.collection, filter="",
                          output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def count(self) -> int:
        with self._lock:
            return self._count()

    def search(self, queries: np.ndarray, limit: int) -> list[list[Keyframe]]:
        """The ``limit`` nearest keyframes (cosine) for each query row, best first, with their
        embeddings (one call: re-scoring needs no second round trip)."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if queries.shape[1] != self.model.embed_dim:
            raise StoreError(f"query embeddings are {queries.shape[1]}-d, the memory holds "
                             f"{self.model.embed_dim}-d embeddings of {self.model.identifier}")
        queries = _unit(queries)
        with self._lock:
            hits = self._call(self._client.search, self.collection, data=queries.tolist(),
                              limit=limit, anns_field="embedding",
                              search_params={"metric_type": METRIC},
                              output_fields=list(ROW_FIELDS) + ["embedding"])
        return [[_keyframe(dict(h["entity"], id=h["id"])) for h in per_query]
                for per_query in hits]

    def _flush(self) -> None:
        self._call(self._client.flush, self.collection)
        self._unsealed = 0

    def flush(self) -> None:
        """Seal what was inserted (Milvus searches sealed segments faster than growing ones)."""
        with self._lock:
            self._flush()

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
        with self._lock:
            it = self._call(self._client.query_iterator, self.collection, batch_size=batch,
                            filter="", output_fields=list(ROW_FIELDS))
        try:
            while True:
                with self._lock:
                    rows = self._call(it.next)
                if not rows:
                    return
                for r in rows:
                    yield _keyframe(r)
        finally:
            it.close()

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._client.close()
            _release_embedded(self.uri)


def stored_identity(uri: str, collection: str = DEFAULT_COLLECTION,
                    token: Optional[str] = None) -> ModelIdentity:
    """The model a memory was built with, read without loading any model."""
    from pymilvus import MilvusClient

    resolved = resolve_uri(uri)
    where = f"memory {resolved} collection '{collection}'"
    if "://" not in resolved and not Path(resolved).exists():
        raise StoreError(f"{where} does not exist; build it with build_memory or the node")
    token = token or os.environ.get("MILVUS_TOKEN", "")
    try:
        client = MilvusClient(resolved, token=token) if token else MilvusClient(resolved)
    except Exception as exc:  # pymilvus raises config, connection and gRPC errors here
        raise StoreError(f"cannot open {where}: {type(exc).__name__}: {exc}") from exc
    try:
        if not client.has_collection(collection):
            raise StoreError(f"{where} does not exist; build it with build_memory or the node")
        props = client.describe_collection(collection).get("properties", {})
        return ModelIdentity.from_properties(props, where)
    finally:
        client.close()
        _release_embedded(resolved)


def _release_embedded(uri: str) -> None:
    """Stop Milvus Lite's in-process server for a local file now, not in an atexit hook while
    the interpreter is being torn down (a node that exits on SIGINT then crashed now and then).
    Assumes one open store per file and process, as the node and the tools have."""
    if "://" in uri:
        return
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def open_store(uri: str, model: ModelIdentity, collection: str = DEFAULT_COLLECTION,
               token: Optional[str] = None) -> KeyframeStore:
    return KeyframeStore(uri, model, collection, token or os.environ.get("MILVUS_TOKEN", ""))
