"""The memory's database connection: one pymilvus ``MilvusClient`` per memory, and the
collections on it that carry the model record.

The same client code serves two deployments:
- a local file (``~/.local/share/clip_perception/memory/places.db``): Milvus Lite, embedded,
  no server, survives restarts;
- a server URI (``http://fleet-memory:19530``, optional token): one memory shared by robots.

A memory holds two collections on one connection (keyframes, and objects beside them); the
connection is closed, and Milvus Lite's in-process server released, when the last one closes.
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from ..embeddings import l2_normalize
from .errors import StoreError
from .identity import ModelIdentity

logger = logging.getLogger(__name__)

DEFAULT_URI = "~/.local/share/clip_perception/memory"  # a folder: <folder>/places.db
DB_NAME = "places.db"
MAX_TEXT = 512
MAX_THUMBNAIL = 65535  # Milvus VARCHAR limit; thumbnails are base64 JPEG, a few KB
# Inner product over L2-normalised vectors is the cosine, and no engine re-normalises the
# stored vectors per query (Milvus Lite 3.x did, ~40 % of its search time).
METRIC = "IP"
# Reads: a query (~/query_places, ~/query_objects, query_memory) is served "Bounded": a server
# answers at once from what it has (it may miss rows written in the last seconds), where
# "Strong" waits for the server's next time tick (~200 ms per search on the 2.3 server here);
# the object recorder must see its own last writes to merge into them and asks "Strong".
# Milvus Lite answers both at once and never misses a row.
QUERY_CONSISTENCY, FRESH_CONSISTENCY = "Bounded", "Strong"
# Milvus Lite 3.x searched unsealed ("growing") rows far slower than sealed ones; the store
# seals after this many inserted rows so a query sees at most this many unsealed.
FLUSH_EVERY = 500


def resolve_uri(uri: str) -> str:
    """A server URI stays as is; a '.db' path is the Milvus Lite file; any other path is a
    memory folder holding places.db (created if missing)."""
    uri = (uri or DEFAULT_URI).strip()
    if is_server(uri):
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


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "unix:"))


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (the store ranks by inner product); a zero row is refused."""
    v = np.atleast_2d(np.asarray(v, np.float32))
    if not np.all(np.any(v != 0, axis=1)):
        raise StoreError("an embedding of all zeros has no direction; expected a CLIP embedding")
    return l2_normalize(v)


def _client(resolved: str, token: str, where: str):
    from pymilvus import MilvusClient

    if not is_server(resolved):
        with warnings.catch_warnings():  # milvus-lite 2.5 reads its version via pkg_resources
            warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
            importlib.import_module("milvus_lite")
    try:
        return MilvusClient(resolved, token=token) if token else MilvusClient(resolved)
    except Exception as exc:  # pymilvus raises config, connection and gRPC errors here
        raise StoreError(f"cannot open {where}: {type(exc).__name__}: {exc}") from exc


def _release_embedded(uri: str) -> None:
    """Stop Milvus Lite's in-process server for a local file now, not in an atexit hook while
    the interpreter is being torn down (a node that exits on SIGINT then crashed now and then).
    Assumes one open connection per file and process, as the node and the tools have."""
    if is_server(uri):
        return
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


class Connection:
    """One client and its lock, shared by a memory's collections (reference counted)."""

    def __init__(self, uri: str, token: str = ""):
        from pymilvus.exceptions import MilvusException

        self.errors = (MilvusException,)
        self.uri = resolve_uri(uri)
        self.lock = threading.Lock()
        self.client = _client(self.uri, token, f"memory {self.uri}")
        self._users = 0

    def acquire(self) -> "Connection":
        with self.lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self.lock:
            self._users -= 1
            if self._users > 0:
                return
            self.client.close()
            _release_embedded(self.uri)


class Collection:
    """A collection of one model on a connection: created with ``schema`` and a FLAT index on
    ``embedding`` when missing, checked against the model record when present."""

    def __init__(self, connection: Connection, model: ModelIdentity, name: str,
                 schema: Callable[[int, str], object]):
        self.conn = connection.acquire()
        self.uri, self.collection, self.model = connection.uri, name, model
        self.where = f"memory {self.uri} collection '{name}'"
        self._schema = schema
        self._lock = connection.lock
        self._client = connection.client
        self._unsealed = 0
        self._closed = False
        try:
            with self._lock:
                self._call(self._open_or_create)
        except BaseException:
            connection.release()
            raise

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.conn.errors as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _open_or_create(self) -> None:
        c = self._client
        if c.has_collection(self.collection):
            stored = ModelIdentity.of_collection(c.describe_collection(self.collection),
                                                 self.where)
            self.model.require_same(stored, self.where)
        else:
            self._create()
        c.load_collection(self.collection)

    def _create(self) -> None:
        c = self._client
        index = c.prepare_index_params()
        # FLAT: exact search, identical results on Milvus Lite and on a server (which may be
        # given another index with the same client code)
        index.add_index(field_name="embedding", index_type="FLAT", metric_type=METRIC)
        # the model record (identity.py) is the collection's description
        schema = self._schema(self.model.embed_dim, self.model.description())
        c.create_collection(self.collection, schema=schema, consistency_level="Strong")
        # sync=False: waiting for the index calls AllocTimestamp, which Milvus Lite 3.x lacks;
        # a FLAT index has nothing to build anyway
        c.create_index(self.collection, index, sync=False)
        logger.info("created %s for %s (%d-d)", self.where, self.model.identifier,
                    self.model.embed_dim)

    def _wrote(self, rows: int) -> None:
        """Called under the lock after ``rows`` were written: seal every FLUSH_EVERY."""
        self._unsealed += rows
        if self._unsealed >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        self._call(self._client.flush, self.collection)
        self._unsealed = 0

    def flush(self) -> None:
        """Seal what was written (searches of sealed segments are the fast path)."""
        with self._lock:
            self._flush()

    def _count(self) -> int:
        rows = self._call(self._client.query, self.collection, filter="",
                          output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def count(self) -> int:
        with self._lock:
            return self._count()

    def clear(self) -> int:
        """Remove every row (the model record stays); returns how many there were."""
        with self._lock:
            n = self._count()
            self._call(self._client.drop_collection, self.collection)
            self._call(self._open_or_create)
        return n

    def iter_rows(self, fields: Sequence[str], batch: int = 1000) -> Iterator[dict]:
        """Every row of the collection with these fields, a batch at a time, holding the
        connection's lock only while a batch is read (a query may run in between)."""
        with self._lock:
            it = self._call(self._client.query_iterator, self.collection, batch_size=batch,
                            filter="", output_fields=list(fields))
        try:
            while True:
                with self._lock:
                    rows = self._call(it.next)
                if not rows:
                    return
                yield from rows
        finally:
            it.close()

    def check_queries(self, queries: np.ndarray) -> np.ndarray:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if queries.shape[1] != self.model.embed_dim:
            raise StoreError(f"query embeddings are {queries.shape[1]}-d, the memory holds "
                             f"{self.model.embed_dim}-d embeddings of {self.model.identifier}")
        return unit_rows(queries)

    def check_embedding(self, embedding: np.ndarray, what: str) -> None:
        shape = np.shape(embedding)
        if shape != (self.model.embed_dim,):
            raise StoreError(f"{what} embedding has shape {shape}, expected "
                             f"({self.model.embed_dim},) for {self.model.identifier}")

    def check_row(self, embedding: np.ndarray, thumbnail: str, what: str) -> None:
        """A row this collection can hold: the model's embedding size, a thumbnail that fits."""
        self.check_embedding(embedding, what)
        if len(thumbnail) > MAX_THUMBNAIL:
            raise StoreError(f"thumbnail is {len(thumbnail)} characters, at most "
                             f"{MAX_THUMBNAIL} fit")

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self.conn.release()


def stored_identity(uri: str, collection: str, token: Optional[str] = None) -> ModelIdentity:
    """The model a memory was built with, read without loading any model."""
    resolved = resolve_uri(uri)
    where = f"memory {resolved} collection '{collection}'"
    if not is_server(resolved) and not Path(resolved).exists():
        raise StoreError(f"{where} does not exist; build it with build_memory or the node")
    client = _client(resolved, token or os.environ.get("MILVUS_TOKEN", ""), where)
    try:
        if not client.has_collection(collection):
            raise StoreError(f"{where} does not exist; build it with build_memory or the node")
        return ModelIdentity.of_collection(client.describe_collection(collection), where)
    finally:
        client.close()
        _release_embedded(resolved)
