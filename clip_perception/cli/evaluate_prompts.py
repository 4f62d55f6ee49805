"""``ros2 run clip_perception evaluate_prompts``: zero-shot accuracy (and optionally a trained
head) per label over labelled frames, with the confusions, to try prompt wordings before
training.

Example:
    evaluate_prompts --image-folder ~/frames --labels strawberry peach \\
        --label-prompt 'strawberry=a photo of a red strawberry with green stem, a type of fruit'
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..core.adapter import AdapterError
from ..core.backends import BackendUnavailable
from ..core.model import ModelLoadError
from ..training.augment import CONDITIONS
from ..training.data import TrainingInputError
from .training_arguments import (add_common_flags, add_model_arguments, add_prompt_arguments,
                                add_source_arguments, model_spec, prompt_spec, setup_logging,
                                source_spec)
from ..training.prompt_evaluation import evaluate_prompts
from ..training.run_report import METHOD_TITLES, format_table, write_json, write_metrics_png


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate_prompts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    add_source_arguments(p)
    add_prompt_arguments(p)
    p.add_argument("--adapter", metavar="PATH", help="also evaluate this head (.safetensors)")
    p.add_argument("--blend", type=float, help="head blend (default: the head's own)")
    p.add_argument("--conditions", nargs="+", default=["original"],
                   choices=list(CONDITIONS) + ["all"], help="synthetic lighting conditions to evaluate under, or 'all' (default: "
                        "original, i.e. as recorded); real ones are named with --condition")
    p.add_argument("--json", metavar="PATH", help="write the full results as JSON")
    p.add_argument("--png", metavar="PATH", help="write accuracy bars and confusion matrices")
    add_common_flags(p)
    return p


def _print_results(result: dict) -> None:
    m = result["metrics"]
    labels = m["labels"]
    print(f"{m['n_frames']} frames; per label: {m['frames_per_label']}")
    print(format_table(m))
    for method in m["accuracy"]:
        print(f"\n{METHOD_TITLES.get(method, method)}: per-label accuracy")
        for cond, per_label in m["per_label_accuracy"][method].items():
            print(f"  {cond:<16}" + "  ".join(f"{label}={acc:.2f}" for label, acc in per_label.items()))
        cm = np.asarray(m["confusion"][method])
        off = [(int(cm[i, j]), labels[i], labels[j]) for i in range(len(labels))
               for j in range(len(labels)) if i != j and cm[i, j]]
        if off:
            print("  most frequent confusions (true -> predicted, all conditions):")
            for n, t, pr in sorted(off, reverse=True)[:8]:
                print(f"    {t} -> {pr}: {n}")
        else:
            print("  no confusions")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    conditions = list(CONDITIONS) if "all" in args.conditions else args.conditions
    try:
        result = evaluate_prompts(model_spec(args), source_spec(args), prompt_spec(args),
                                  adapter_path=args.adapter, blend=args.blend,
                                  conditions=conditions,
                                  progress=False if args.no_progress else None)
    except (TrainingInputError, ModelLoadError, BackendUnavailable, AdapterError) as exc:
        print(f"evaluate_prompts: error: {exc}", file=sys.stderr)
        return 2
    if result["read"]["corrupt"]:
        print(f"skipped {result['read']['corrupt']} unreadable message(s)")
    _print_results(result)
    for cond, m in result["real_conditions"].items():
        print(f"\nreal condition '{cond}' ({m['n_frames']} frames, as recorded): " + ", ".join(
            f"{METHOD_TITLES.get(k, k)} {v[cond]:.3f}" for k, v in m["balanced_accuracy"].items())
              + " class-balanced accuracy")
    if args.json:
        write_json(args.json, result)
        print(f"results: {args.json}")
    if args.png:
        write_metrics_png(args.png, result["metrics"], result["model_identifier"])
        print(f"report: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
