"""train_adapter on the small CLIP: takes of synthetic scenes in four real lights, lighting
augmentation, and its verdict on held-out takes (issue 23, part 3).

    python benchmarks/bench_accuracy_adapter.py [--takes 8] [--frames 6] [--head augmented] [--json PATH]

Runs the real CLI (``train_adapter --image-folder``) with the torch fp32 engine; prints and
writes the report's verdict, zero-shot vs head accuracy per condition (real lights and the
synthetic evaluation conditions, including the shadow).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clip_perception.cli import train_adapter  # noqa: E402
from clip_perception.training import synthetic_scenes as scenes  # noqa: E402
from clip_perception.training.synthetic_takes import write_takes  # noqa: E402

MODEL = f"local-dir:{REPO / 'models' / 'small_clip'}"
KINDS = ("red circle", "green square", "blue star", "yellow triangle", "purple cross",
         "orange hexagon", "white diamond", "black ring")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=MODEL)
    p.add_argument("--takes", type=int, default=8)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--augmentations", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", default="auto", choices=["auto", "plain", "augmented"],
                   help="train_adapter --head: which heads validation chooses from")
    p.add_argument("--split-seed", type=int, default=0, help="train_adapter --split-seed")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--keep", metavar="DIR", help="write frames and head here (default: a tmp dir)")
    args = p.parse_args(argv)
    start, load = time.perf_counter(), os.getloadavg()[0]
    work = Path(args.keep or tempfile.mkdtemp(prefix="accuracy_adapter_"))
    lights = write_takes(work / "frames", KINDS, args.takes, args.frames, seed=args.seed)
    cli = ["--model", args.model, "--backend", "torch", "--precision", "fp32",
           "--image-folder", str(work / "frames"), "--labels", *KINDS,
           "--templates", *scenes.KIND_TEMPLATES, "--augmentations", str(args.augmentations),
           "--cache-dir", str(work / "cache"), "--output", str(work / "head.safetensors"),
           "--seed", str(args.seed), "--head", args.head,
           "--split-seed", str(args.split_seed), "--no-progress"]
    code = train_adapter.main(cli)
    report_path = work / "head.report.json"
    reports = sorted(work.glob("*.json"))
    report = json.loads(report_path.read_text()) if report_path.is_file() else \
        {"reports_found": [str(r) for r in reports]}
    keep = ("verdict", "labels", "selection", "leave_one_condition_out", "head_config")
    report = {k: report[k] for k in keep if k in report} or report
    out = {"exit_code": code, "lights_per_take": lights, "command": "train_adapter " + " ".join(cli).replace(str(work), "WORK"),
           "seconds": round(time.perf_counter() - start, 1),
           "load_average_before_after": [load, os.getloadavg()[0]], "report": report}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "report"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
