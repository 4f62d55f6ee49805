"""Places: the keyframes that match a query, grouped within ``min_separation`` and ranked.

Scores are raw cosines (LM-Nav style): for each query embedding (one per text, or one image)
a place's score is the max over its keyframes; the place's ``score`` is the mean of those per
text, so a place must match every text to rank first. The place's pose, stamp and camera are
those of its best keyframe. Grouping is greedy from the best keyframe down: a keyframe joins
the first place whose best keyframe is closer than ``min_separation`` metres, else it starts a
new place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..embeddings import l2_normalize
from .errors import PlaceMemoryError
from .store import Keyframe, KeyframeStore

DEFAULT_K = 3
CANDIDATES_PER_PLACE = 20  # keyframes fetched per requested place and query, >= 100 in all


@dataclass(frozen=True)
class Place:
    keyframe: Keyframe  # the best keyframe: its pose is the place's pose
    score: float
    scores: tuple[float, ...]  # per query embedding, max over the place's keyframes
    members: int  # keyframes grouped into this place


def place_record(place: Place) -> dict:
    """One place as plain JSON values (query_memory --json)."""
    kf = place.keyframe
    x, y, z = kf.pose.position
    return {"x": x, "y": y, "z": z, "yaw": kf.pose.yaw, "frame_id": kf.pose.frame_id,
            "score": place.score, "scores": list(place.scores), "stamp": kf.stamp_ns / 1e9,
            "camera": kf.camera, "keyframe_id": kf.keyframe_id}


def check_query(k: int, min_separation: float) -> int:
    """k == 0 means the default (3)."""
    if k < 0:
        raise PlaceMemoryError(f"k must be >= 0 (0 = default {DEFAULT_K}), got {k}")
    if not min_separation >= 0:
        raise PlaceMemoryError(f"min_separation must be >= 0 m, got {min_separation}")
    return k or DEFAULT_K


def group_places(keyframes: Sequence[Keyframe], cosines: np.ndarray, k: int,
                 min_separation: float) -> list[Place]:
    """``cosines``: (N keyframes, Q queries). Returns at most ``k`` places, best first."""
    if len(keyframes) == 0:
        return []
    cosines = np.asarray(cosines, np.float64).reshape(len(keyframes), -1)
    combined = cosines.mean(axis=1)
    positions = np.array([kf.pose.position for kf in keyframes])
    anchors: list[int] = []  # best keyframe of each place
    best = []  # per place: max cosine per query
    counts = []
    for i in np.argsort(-combined, kind="stable"):
        if anchors:
            d = np.linalg.norm(positions[anchors] - positions[i], axis=1)
            j = int(np.argmin(d))
            if d[j] < min_separation:
                best[j] = np.maximum(best[j], cosines[i])
                counts[j] += 1
                continue
        anchors.append(int(i))
        best.append(cosines[i].copy())
        counts.append(1)
    places = [Place(keyframes[a], float(b.mean()), tuple(float(s) for s in b), c)
              for a, b, c in zip(anchors, best, counts)]
    places.sort(key=lambda p: -p.score)
    return places[:k]


@dataclass(frozen=True)
class PlaceQuery:
    places: list[Place]
    candidates: list[Keyframe]  # every keyframe scored (for markers)
    scores: np.ndarray  # (len(candidates),) mean cosine over the queries


def query_places(store: KeyframeStore, queries: np.ndarray, k: int = DEFAULT_K,
                 min_separation: float = 1.0, fresh: bool = False) -> PlaceQuery:
    """Nearest keyframes per query from the store, re-scored exactly, grouped, ranked.
    ``fresh``: include rows written in the last seconds on a server (slower there)."""
    k = check_query(k, min_separation)
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    if queries.shape[0] == 0:
        raise PlaceMemoryError("no query: expected at least one text or an image")
    queries = l2_normalize(queries)  # raw cosines, whatever the caller's scaling
    limit = max(100, CANDIDATES_PER_PLACE * k)
    found = {kf.keyframe_id: kf for per_query in store.search(queries, limit, fresh)
             for kf in per_query}
    candidates = [found[i] for i in sorted(found)]
    if not candidates:
        return PlaceQuery([], [], np.zeros(0, np.float32))
    cosines = np.stack([c.embedding for c in candidates]) @ queries.T
    return PlaceQuery(group_places(candidates, cosines, k, min_separation), candidates,
                      cosines.mean(axis=1))
