"""``ros2 run clip_perception query_memory``: where did the robot see this?

Texts (one raw cosine per text, max over each place's keyframes) or an image ("where was this
photo taken?"); prints places best first, or one JSON object per line with --json. With
--objects: the objects (labelled boxes merged, build_memory --boxes-topic or the node) that
match, with where each one is (x y z) and the pose it was seen best from.

Example:
    query_memory --memory ~/memories/office --text "a red door" --k 3 --json
    query_memory --memory ~/memories/office --text "a red door" --objects --json
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import cv2

from ..core.backends import BackendUnavailable
from ..core.memory import (PlaceMemoryError, open_store, place_record, query_places,
                           stored_identity)
from ..core.memory.object_query import object_record, query_objects
from ..core.memory.object_store import open_object_store
from ..core.memory.places import DEFAULT_K
from ..core.model import ModelLoadError
from ..core.vocabulary.spec import DEFAULT_LANDMARK_TEMPLATES
from .memory_arguments import (EXIT_INPUT_ERROR, Encoders, add_memory_arguments,
                             add_model_arguments, load_encoders, setup_logging)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="query_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", nargs="+", metavar="TEXT", help="what to look for")
    q.add_argument("--image", metavar="FILE", help="a photo: where was it taken?")
    p.add_argument("--k", type=int, default=DEFAULT_K, help="places (default: %(default)s)")
    p.add_argument("--min-separation", type=float, default=1.0, metavar="M",
                   help="keyframes closer than this are one place (default: %(default)s)")
    p.add_argument("--templates", nargs="+", default=list(DEFAULT_LANDMARK_TEMPLATES),
                   metavar="TEMPLATE", help="prompt templates for the texts, as the node's "
                                            "landmark_templates (default: %(default)s)")
    p.add_argument("--objects", action="store_true",
                   help="objects instead of places: where the thing is, not where the robot was")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per place (or object) and line")
    add_memory_arguments(p)
    add_model_arguments(p, required=False)
    return p


def _query_embeddings(args, enc: Encoders):
    if args.text:
        return enc.texts(args.text, args.templates)
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise PlaceMemoryError(f"cannot read image {args.image}")
    return enc.images([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        identity = stored_identity(args.memory, args.collection)
        model = args.model or identity.load[0]
        pretrained = args.pretrained if args.model else identity.load[1]
        enc = load_encoders(args, model, pretrained)
        store = open_store(args.memory, type(identity).of(enc.clip), args.collection)
        try:
            queries = _query_embeddings(args, enc)
            if args.objects:
                objects = open_object_store(store)
                try:
                    return _print_objects(query_objects(objects, queries, args.k), args.json)
                finally:
                    objects.close()
            result = query_places(store, queries, args.k, args.min_separation)
        finally:
            store.close()
    except (PlaceMemoryError, ModelLoadError, BackendUnavailable, ValueError) as exc:
        print(f"query_memory: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    for place in result.places:
        r = place_record(place)
        if args.json:
            print(json.dumps(r))
        else:
            scores = ", ".join(f"{s:.3f}" for s in r["scores"])
            print(f"{r['score']:.3f} [{scores}] at x={r['x']:.2f} y={r['y']:.2f} "
                  f"yaw={math.degrees(r['yaw']):.0f} deg ({r['frame_id']}), seen "
                  f"{r['stamp']:.3f} s by {r['camera']}, keyframe {r['keyframe_id']}")
    if not result.places and not args.json:
        print("the memory is empty")
    return 0


def _print_objects(result, as_json: bool) -> int:
    for m in result.matches:
        r = object_record(m)
        if as_json:
            print(json.dumps(r))
            continue
        scores = ", ".join(f"{s:.3f}" for s in r["scores"])
        at = "no position (no depth)" if r["x"] is None else \
            f"at x={r['x']:.2f} y={r['y']:.2f} z={r['z']:.2f}"
        f = r["seen_from"]
        print(f"{r['score']:.3f} [{scores}] {r['label'] or 'object'} {at} ({r['frame_id']}), "
              f"seen from x={f['x']:.2f} y={f['y']:.2f} yaw={math.degrees(f['yaw']):.0f} deg, "
              f"{r['observations']} observations, last {r['last_seen']:.3f} s by "
              f"{r['camera']}, object {r['object_id']}")
    if not result.matches and not as_json:
        print("the memory has no objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
