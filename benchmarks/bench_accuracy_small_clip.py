"""What the small CLIP knows, and what the package's accuracy features do on it (issue 23).

    python benchmarks/bench_accuracy_small_clip.py [--model local-dir:models/small_clip] \\
        [--parts zero_shot scores lighting] [--json PATH]

zero_shot: accuracy per scene attribute on held-out scenes (other seeds; and the (colour,
shape) pairs training never rendered), prompt ensemble vs one template.
scores:    in-set vs out-of-set frames at 3, 10 and 30 labels for each score (training/score_study.py),
           out of set by shape, by colour, and (an extra, farther definition) by both; why the
           out-of-set acceptances climb with the label count (training/score_drift.py).
lighting:  accuracy under each evaluation condition of training/augment.py.
Accuracy numbers do not depend on the machine's load (only the times do).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clip_perception.core import devices  # noqa: E402
from clip_perception.core.model import load_clip  # noqa: E402
from clip_perception.training import synthetic_scenes as scenes  # noqa: E402
from clip_perception.training.augment import CONDITIONS  # noqa: E402
from clip_perception.training.score_study import run_study  # noqa: E402
from clip_perception.training.small_clip_eval import (SmallClipProbe, attribute_accuracy,  # noqa: E402
                                                      held_out_scenes, kind_accuracy, render_all)

DEFAULT_MODEL = f"local-dir:{REPO / 'models' / 'small_clip'}"
LIGHTING_LABELS = ("red circle", "green square", "blue star", "yellow triangle", "purple cross",
                   "orange hexagon", "white diamond", "black ring")


def zero_shot(probe: SmallClipProbe, n: int) -> dict:
    size = probe.clip.image_size
    seen = held_out_scenes(n, seed=1)
    unseen = held_out_scenes(n // 2, seed=2, unseen_pairs=True)
    e_seen = probe.embed_images(render_all(seen, size))
    e_unseen = probe.embed_images(render_all(unseen, size))
    return {"held_out_seeds": {"frames": len(seen),
                               "attributes": attribute_accuracy(probe, seen, e_seen),
                               "kind_of_120": kind_accuracy(probe, seen, e_seen)},
            "unseen_pairs": {"frames": len(unseen), "pairs": [" ".join(p) for p in scenes.HELD_OUT_PAIRS],
                             "attributes": attribute_accuracy(probe, unseen, e_unseen,
                                                              ("shape", "colour")),
                             "kind_of_120": kind_accuracy(probe, unseen, e_unseen)}}


def lighting(probe: SmallClipProbe, per_label: int) -> dict:
    size = probe.clip.image_size
    pairs = []
    for i, kind in enumerate(LIGHTING_LABELS):
        colour, shape = kind.split(" ")
        pairs += held_out_scenes(per_label, seed=300 + i, colour=colour, shape=shape)
    truth = np.repeat(np.arange(len(LIGHTING_LABELS)), per_label)
    clf = probe.classifier(LIGHTING_LABELS, scenes.KIND_TEMPLATES)
    out = {"labels": list(LIGHTING_LABELS), "frames": len(pairs), "accuracy": {},
           "colour_accuracy": {}, "shape_accuracy": {}}
    for name, fn in CONDITIONS.items():
        emb = probe.embed_images(render_all(pairs, size, lambda img, s: fn(img, f"{name}/{s}")))
        out["accuracy"][name] = round(float((clf.logits(emb).argmax(1) == truth).mean()), 4)
        attrs = attribute_accuracy(probe, [(p[0], p[1]) for p in pairs], emb, ("colour", "shape"))
        out["colour_accuracy"][name] = attrs["colour"]["ensemble"]
        out["shape_accuracy"][name] = attrs["shape"]["ensemble"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--parts", nargs="+", default=["zero_shot", "scores", "lighting"],
                   choices=["zero_shot", "scores", "lighting"])
    p.add_argument("--frames", type=int, default=1200, help="held-out scenes for zero_shot")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    start, load = time.perf_counter(), os.getloadavg()[0]
    probe = SmallClipProbe(load_clip(args.model), threads=args.threads)
    cpu = devices.cpu_identity()
    result = {"model": args.model, "cpu": cpu["model"], "isa": devices.isa_label(cpu["isa"]),
              "cpu_count": os.cpu_count(), "threads": args.threads}
    if "zero_shot" in args.parts:
        result["zero_shot"] = zero_shot(probe, args.frames)
    if "scores" in args.parts:
        result["scores"] = run_study(probe, out_attribute="shape")
        result["scores_by_colour"] = run_study(probe, out_attribute="colour")
        result["scores_by_colour_and_shape"] = run_study(probe, out_attribute="colour_and_shape")
    if "lighting" in args.parts:
        result["lighting"] = lighting(probe, 40)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["load_average_before_after"] = [load, os.getloadavg()[0]]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
