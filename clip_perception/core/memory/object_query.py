"""Object queries: the objects that match texts or an image, re-scored exactly and ranked.

Scores are raw cosines to the object's mean embedding, one per query embedding (one per text,
or one image); an object's ``score`` is their mean, so an object must match every text to
rank first ("a red door" and "a door with a window" both). Objects are already merged, so
there is no grouping: the k best are the answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embeddings import l2_normalize
from .errors import PlaceMemoryError
from .object_store import MemoryObject, ObjectStore

DEFAULT_K = 3
CANDIDATES_PER_OBJECT = 20  # fetched per requested object and query, >= 100 in all


@dataclass(frozen=True)
class ObjectMatch:
    object: MemoryObject
    score: float
    scores: tuple[float, ...]  # per query embedding


@dataclass(frozen=True)
class ObjectQuery:
    matches: list[ObjectMatch]  # best first, at most k
    candidates: list[MemoryObject]  # every object scored (for markers)
    scores: np.ndarray  # (len(candidates),) mean cosine over the queries


def query_objects(store: ObjectStore, queries: np.ndarray, k: int = DEFAULT_K,
                  fresh: bool = False) -> ObjectQuery:
    """k == 0 means the default (3). ``fresh``: include objects written in the last seconds
    on a server (slower there)."""
    if k < 0:
        raise PlaceMemoryError(f"k must be >= 0 (0 = default {DEFAULT_K}), got {k}")
    k = k or DEFAULT_K
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    if queries.shape[0] == 0:
        raise PlaceMemoryError("no query: expected at least one text or an image")
    queries = l2_normalize(queries)
    limit = max(100, CANDIDATES_PER_OBJECT * k)
    found = {o.object_id: o for per_query in store.search(queries, limit, fresh=fresh)
             for o in per_query}
    candidates = [found[i] for i in sorted(found)]
    if not candidates:
        return ObjectQuery([], [], np.zeros(0, np.float32))
    cosines = np.stack([c.embedding for c in candidates]).astype(np.float64) @ queries.T
    mean = cosines.mean(axis=1)
    order = np.argsort(-mean, kind="stable")[:k]
    matches = [ObjectMatch(candidates[i], float(mean[i]), tuple(float(s) for s in cosines[i]))
               for i in order]
    return ObjectQuery(matches, candidates, mean.astype(np.float32))


def object_record(m: ObjectMatch) -> dict:
    """One object as plain JSON values (query_memory --objects --json). ``x y z`` is where
    the object is (None without depth), ``seen_from`` where it was seen best from."""
    o = m.object
    pos = [None] * 3 if o.position is None else [float(v) for v in o.position]
    s = o.seen_from
    return {"x": pos[0], "y": pos[1], "z": pos[2], "frame_id": s.frame_id,
            "seen_from": {"x": s.position[0], "y": s.position[1], "z": s.position[2],
                          "qx": s.orientation[0], "qy": s.orientation[1],
                          "qz": s.orientation[2], "qw": s.orientation[3], "yaw": s.yaw},
            "score": m.score, "scores": list(m.scores), "observations": o.observations,
            "first_seen": o.first_seen_ns / 1e9, "last_seen": o.last_seen_ns / 1e9,
            "camera": o.camera, "label": o.label, "object_id": o.object_id}
