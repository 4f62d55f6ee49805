"""``ros2 run clip_perception train_adapter``: fine-tune the adapter head on frames from bags
or image folders, with lighting augmentation. Whole takes go to training, validation (picks
epoch, blend, plain vs augmented) and test (the verdict); accuracy is reported per real and
synthetic lighting condition. The head is written only if it beats zero-shot on test by
--min-gain points (bootstrap lower bound above 0) and loses no condition by more than
--max-loss points; otherwise exit 3.

Example:
    train_adapter --bag ~/bags/kitchen --topic /camera/image_raw/compressed \\
        --labels-file kitchen_labels.yaml --labels cup apple bowl --output heads/kitchen.safetensors
"""
from __future__ import annotations

import argparse
import sys

from ..core.adapter import AdapterError
from ..core.backends import BackendUnavailable
from ..core.model import ModelLoadError
from ..training.data import TrainingInputError
from ..training.head import TrainConfig
from ..training.head_selection import AUGMENTED, DEFAULT_BLEND_GRID, PLAIN
from ..training.verdict import VerdictRule
from .training_arguments import (add_common_flags, add_model_arguments, add_prompt_arguments,
                                add_source_arguments, model_spec, prompt_spec, setup_logging,
                                source_spec)
from ..training.pipeline import TrainSpec, train_adapter

EXIT_INPUT_ERROR = 2
EXIT_REFUSED = 3  # the verdict refused the head: not written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_adapter", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", "-o", required=True,
                   help="head file (.safetensors); metadata .json, augmentation and reports are "
                        "written beside it")
    add_model_arguments(p)
    add_source_arguments(p)
    add_prompt_arguments(p)
    s = p.add_argument_group("split (whole takes: contiguous runs of one label on one source)")
    s.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each label's takes for validation (picks epoch, blend, plain vs "
                        "augmented) (default: %(default)s)")
    s.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of each label's takes for test (used once, for the verdict) "
                        "(default: %(default)s)")
    s.add_argument("--gap", type=float, default=2.0, metavar="S",
                   help="drop training frames closer than S seconds to a validation/test frame "
                        "(default: %(default)s)")
    s.add_argument("--split-seed", type=int, default=0, help="which takes go where (default: %(default)s)")
    s.add_argument("--allow-few-takes", action="store_true",
                   help="cut the takes of labels with fewer than 3 into pieces instead of "
                        "refusing; the report is marked optimistic")
    a = p.add_argument_group("augmentation")
    a.add_argument("--augmentation-config", metavar="FILE",
                   help="albumentations pipeline saved with A.save (.yaml/.json); default: the "
                        "built-in lighting pipeline (config/lighting_augmentation.yaml)")
    a.add_argument("--augmentations", type=int, default=8, metavar="K",
                   help="augmented draws per training frame; 0 trains without augmentation (default: %(default)s)")
    a.add_argument("--augmentation-seed", type=int, default=0, help="seed of the draws (default: %(default)s)")
    a.add_argument("--head", choices=sorted(HEAD_CHOICES), default="auto",
                   help="which heads validation chooses from: auto = the plain one and (with "
                        "--augmentations > 0) the augmented one; augmented = only the head "
                        "trained on augmented frames, for a light the validation takes do not "
                        "show (the verdict still judges every condition) (default: %(default)s)")
    h = p.add_argument_group("head")
    d = TrainConfig()
    D = "(default: %(default)s)"
    h.add_argument("--hidden", type=int, default=d.hidden, help="hidden units of the residual MLP (default: %(default)s)")
    h.add_argument("--blend-grid", type=float, nargs="+", default=list(DEFAULT_BLEND_GRID),
                   metavar="B", help="blends in (0, 1] validation chooses from; the chosen one "
                                     "is stored as the node's default (default: %(default)s)")
    h.add_argument("--blend", type=float, default=None,
                   help="use this one blend instead of choosing from --blend-grid")
    h.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    h.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="L2 pull of the weights toward the zero-shot start (default: %(default)s)")
    h.add_argument("--epochs", type=int, default=d.max_epochs, help="maximum epochs (default: %(default)s)")
    h.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation loss (default: %(default)s)")
    h.add_argument("--batch-size", type=int, default=d.batch_size, help=D.strip())
    h.add_argument("--seed", type=int, default=d.seed, help="head initialisation and shuffling (default: %(default)s)")
    h.add_argument("--head-threads", type=int, default=d.threads, metavar="N",
                   help="torch threads while training heads; 0 = torch's default. One was 5x "
                        "faster than two on 2 busy cores (default: %(default)s)")
    v = p.add_argument_group("verdict (on the test takes)")
    r = VerdictRule()
    v.add_argument("--min-gain", type=float, default=r.min_gain, metavar="POINTS",
                   help="class-balanced accuracy gain over zero-shot needed, in points; its "
                        "bootstrap 95%% lower bound must also be above 0 (default: %(default)s)")
    v.add_argument("--max-loss", type=float, default=r.max_loss, metavar="POINTS",
                   help="largest loss allowed on any condition, real or synthetic (default: %(default)s)")
    v.add_argument("--bootstrap", type=int, default=r.resamples, metavar="N",
                   help="bootstrap resamples of the test takes (default: %(default)s)")
    v.add_argument("--force", action="store_true",
                   help="write the head even if the verdict refuses it (the report says so)")
    add_common_flags(p)
    return p


HEAD_CHOICES = {"auto": None, "plain": (PLAIN,), "augmented": (AUGMENTED,)}


def _train_spec(args) -> TrainSpec:
    if args.head == "augmented" and args.augmentations < 1:
        raise TrainingInputError("--head augmented needs --augmentations >= 1, got "
                                 f"{args.augmentations}")
    if args.bootstrap < 100:
        raise TrainingInputError(f"--bootstrap must be >= 100 resamples, got {args.bootstrap}")
    if args.max_loss < 0:
        raise TrainingInputError(f"--max-loss must be >= 0 points, got {args.max_loss}")
    return TrainSpec(
        output=args.output, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        gap_s=args.gap, split_seed=args.split_seed, allow_few_takes=args.allow_few_takes,
        augmentation_config=args.augmentation_config, augmentation_seed=args.augmentation_seed,
        draws=args.augmentations, variants=HEAD_CHOICES[args.head],
        blend_grid=[args.blend] if args.blend is not None else args.blend_grid,
        head=TrainConfig(hidden=args.hidden, lr=args.lr, weight_decay=args.weight_decay,
                         max_epochs=args.epochs, patience=args.patience,
                         batch_size=args.batch_size, seed=args.seed, threads=args.head_threads),
        verdict=VerdictRule(min_gain=args.min_gain, max_loss=args.max_loss, force=args.force,
                            resamples=args.bootstrap))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        report = train_adapter(model_spec(args), source_spec(args), prompt_spec(args),
                               _train_spec(args), progress=False if args.no_progress else None)
    except (TrainingInputError, ModelLoadError, BackendUnavailable, AdapterError) as exc:
        print(f"train_adapter: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    read = report["read"]
    if read["corrupt"]:
        print(f"skipped {read['corrupt']} unreadable message(s), e.g. {read['corrupt_examples'][0]}")
    enc = report["encoder"]
    print(f"features from {enc['backend']} ({enc['precision']}): "
          f"{report['feature_cache']['encoded']} encoded, {report['feature_cache']['hits']} from cache")
    print(report["summary"])
    print(f"report: {report['report_json']} and {report['report_png']}")
    if report["head_path"] is None:
        return EXIT_REFUSED
    print(f"head written: {report['head_path']} (set the node's adapter_path to it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
