"""``ros2 run clip_perception train_adapter``: fine-tune the adapter head on frames from bags
or image folders, with lighting augmentation, and report accuracy per lighting condition.

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
from ..training.options import (add_common_flags, add_model_arguments, add_prompt_arguments,
                                add_source_arguments, model_spec, prompt_spec, setup_logging,
                                source_spec)
from ..training.pipeline import TrainSpec, train_adapter

EXIT_INPUT_ERROR = 2
EXIT_REFUSED = 3  # a head worse than zero-shot was not written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_adapter", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", "-o", required=True,
                   help="head file (.safetensors); metadata .json, augmentation and reports are "
                        "written beside it")
    add_model_arguments(p)
    add_source_arguments(p)
    add_prompt_arguments(p)
    s = p.add_argument_group("split (time blocks, not random frames)")
    s.add_argument("--val-fraction", type=float, default=0.25, help="share of each label's time blocks used for validation (default: %(default)s)")
    s.add_argument("--block-seconds", type=float, default=10.0, help="time block length in seconds (default: %(default)s)")
    s.add_argument("--split-gap", type=float, default=1.0,
                   help="drop training frames closer than this (s) to a validation frame (default: %(default)s)")
    s.add_argument("--split-seed", type=int, default=0, help="which blocks go to validation (default: %(default)s)")
    a = p.add_argument_group("augmentation")
    a.add_argument("--augmentation-config", metavar="FILE",
                   help="albumentations pipeline saved with A.save (.yaml/.json); default: the "
                        "built-in lighting pipeline (config/lighting_augmentation.yaml)")
    a.add_argument("--augmentations", type=int, default=8, metavar="K",
                   help="augmented draws per training frame; 0 trains without augmentation (default: %(default)s)")
    a.add_argument("--augmentation-seed", type=int, default=0, help="seed of the draws (default: %(default)s)")
    h = p.add_argument_group("head")
    d = TrainConfig()
    D = "(default: %(default)s)"
    h.add_argument("--hidden", type=int, default=d.hidden, help="hidden units of the residual MLP (default: %(default)s)")
    h.add_argument("--blend", type=float, default=d.blend,
                   help="weight of the head against zero-shot, in (0, 1]; stored as the node's default (default: %(default)s)")
    h.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (default: %(default)s)")
    h.add_argument("--weight-decay", type=float, default=d.weight_decay, help=D.strip())
    h.add_argument("--epochs", type=int, default=d.max_epochs, help="maximum epochs (default: %(default)s)")
    h.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation loss (default: %(default)s)")
    h.add_argument("--batch-size", type=int, default=d.batch_size, help=D.strip())
    h.add_argument("--seed", type=int, default=d.seed, help="head initialisation and shuffling (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="write the head even if it is worse than zero-shot on validation")
    add_common_flags(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        train = TrainSpec(
            output=args.output, val_fraction=args.val_fraction, block_seconds=args.block_seconds,
            split_gap_s=args.split_gap, split_seed=args.split_seed,
            augmentation_config=args.augmentation_config, augmentation_seed=args.augmentation_seed,
            draws=args.augmentations, force=args.force,
            head=TrainConfig(hidden=args.hidden, lr=args.lr, weight_decay=args.weight_decay,
                             max_epochs=args.epochs, patience=args.patience,
                             batch_size=args.batch_size, blend=args.blend, seed=args.seed))
        report = train_adapter(model_spec(args), source_spec(args), prompt_spec(args), train,
                               progress=False if args.no_progress else None)
    except (TrainingInputError, ModelLoadError, BackendUnavailable, AdapterError) as exc:
        print(f"train_adapter: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    read = report["read"]
    if read["corrupt"]:
        print(f"skipped {read['corrupt']} unreadable message(s), e.g. {read['corrupt_examples'][0]}")
    print(f"{report['split']['train_frames']} training / {report['split']['val_frames']} validation "
          f"frames; features: {report['feature_cache']['encoded']} encoded, "
          f"{report['feature_cache']['hits']} from cache")
    print(report["table"])
    print(report["decision"])
    print(f"report: {report['report_json']} and {report['report_png']}")
    if report["head_path"] is None:
        return EXIT_REFUSED
    print(f"head written: {report['head_path']} (set the node's adapter_path to it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
