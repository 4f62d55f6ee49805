"""train_adapter as named steps (the CLI only parses arguments):

split (whole takes -> training / validation / test) -> features (the served engine, cached)
-> train (one head per variant and blend; validation picks) -> evaluate (test, once, per real
and synthetic condition; leave-one-condition-out) -> decide (the verdict) -> write (head,
metadata, JSON + PNG report).
"""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..core.adapter import save_adapter
from .augment import CONDITIONS, Augmenter, condition_key, default_pipeline, load_pipeline
from .data import TrainingInputError
from .engine import (ModelSpec, PromptSpec, create_encoder, describe_encoder, load_model,
                     prepare_fn, zero_shot_classifier)
from .evaluate import confusion_matrix, predict
from .features import FeatureExtractor, FeatureTable, ViewJob
from .head import TrainConfig
from .holdout import leave_one_condition_out
from .run_report import format_summary, write_json, write_png
from .head_selection import DEFAULT_BLEND_GRID, TrainingData, choose, train_candidates
from .sources import LoadedFrames, SourceSpec, load_frames
from .split import Split, split_takes
from .takes import find_takes, takes_per_label
from .verdict import Outcome, VerdictRule, decide

logger = logging.getLogger(__name__)

SYNTHETIC = tuple(c for c in CONDITIONS if c != "original")
VALIDATION_DRAWS = 2  # augmentation draws of each validation/test frame (early stopping only)
UNNAMED = "unnamed"  # the real condition of frames whose source the user did not name


@dataclass
class TrainSpec:
    output: str
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    gap_s: float = 2.0
    split_seed: int = 0
    allow_few_takes: bool = False
    augmentation_config: str | None = None
    augmentation_seed: int = 0
    draws: int = 8
    head: TrainConfig = field(default_factory=TrainConfig)
    blend_grid: Sequence[float] = DEFAULT_BLEND_GRID
    verdict: VerdictRule = field(default_factory=VerdictRule)
    variants: Optional[Sequence[str]] = None  # heads to train (None: plain, and augmented if draws)


@dataclass
class Features:
    original: FeatureTable  # every loaded frame as recorded
    draws: list[FeatureTable]  # the training frames, one table per augmentation draw
    held_draws: list[FeatureTable]  # validation and test frames, VALIDATION_DRAWS draws
    synthetic: dict[str, FeatureTable]  # the test frames under each synthetic condition


def split_step(loaded: LoadedFrames, train: TrainSpec) -> Split:
    """Cut the frames into takes and deal whole takes to training, validation and test."""
    takes = find_takes(loaded.frames, loaded.starts)
    split = split_takes(takes, loaded.labels, train.val_fraction, train.test_fraction,
                        train.gap_s, train.split_seed, train.allow_few_takes)
    logger.info("takes: %s; %d training / %d validation / %d test frames (%d dropped at the gap)",
                takes_per_label(takes, loaded.labels), len(split.train_frames),
                len(split.frames("validation")), len(split.frames("test")), split.dropped_gap)
    return split


def features_step(extractor: FeatureExtractor, loaded: LoadedFrames, split: Split,
                  augmenter: Augmenter) -> Features:
    """Embed every frame as recorded, the training frames' augmentation draws, a few draws of
    the validation and test frames (what the augmented head early-stops on, here and in the
    leave-one-condition-out runs) and the test frames under the synthetic conditions (each
    view once; the cache skips known ones)."""
    train, test = split.train_frames, split.frames("test")
    held = split.frames("validation") + test

    def draws_of(frames, count):
        return [ViewJob(frames, augmenter.draw_key(k),
                        lambda crop, digest, k=k: augmenter.apply(crop, digest, k))
                for k in range(1, count + 1)]

    draws = draws_of(train, augmenter.draws)
    held_draws = draws_of(held, min(augmenter.draws, VALIDATION_DRAWS))
    synthetic = [ViewJob(test, condition_key(c), CONDITIONS[c]) for c in SYNTHETIC]
    x = iter(extractor.embed([ViewJob(loaded.frames, "original")] + draws + held_draws
                             + synthetic, desc="encoding"))
    return Features(FeatureTable(loaded.frames, next(x)),
                    [FeatureTable(train, next(x)) for _ in draws],
                    [FeatureTable(held, next(x)) for _ in held_draws],
                    {c: FeatureTable(test, next(x)) for c in SYNTHETIC})


def _y(frames, labels) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[f.label] for f in frames], np.int64)


def train_step(features: Features, split: Split, labels, classifier, train: TrainSpec,
               progress=None):
    """Train one head per variant (plain, augmented) and blend of the grid; validation picks
    the epoch of each and then the best one. Returns (chosen, all candidates)."""
    val = split.frames("validation")
    data = TrainingData(features.original.of(split.train_frames), _y(split.train_frames, labels),
                        [d.of(split.train_frames) for d in features.draws],
                        features.original.of(val), _y(val, labels),
                        [d.of(val) for d in features.held_draws])
    candidates = train_candidates(data, classifier, train.head, train.blend_grid,
                                  train.variants, progress)
    chosen = choose(candidates)
    logger.info("validation chose %s at blend %g (balanced accuracy %.3f)", chosen.variant,
                chosen.blend, chosen.val_balanced_accuracy)
    return chosen, candidates


def evaluate_step(features: Features, split: Split, labels, classifier, chosen) -> dict:
    """Predict the test takes once with zero-shot and the chosen head: as recorded (overall
    and per real condition) and under every synthetic condition."""
    test = split.frames("test")
    y = _y(test, labels)
    take_of = {id(f): i for i, t in enumerate(split.takes["test"]) for f in t.frames}
    x = features.original.of(test)
    overall = Outcome(y, predict(classifier.logits, x), predict(chosen.model.logits, x))
    conds = np.asarray([f.condition or UNNAMED for f in test])
    real = {c: Outcome(y[conds == c], overall.zero_shot[conds == c], overall.head[conds == c])
            for c in sorted(set(conds))}
    synthetic = {c: Outcome(y, predict(classifier.logits, t.x), predict(chosen.model.logits, t.x))
                 for c, t in features.synthetic.items()}
    n = len(labels)
    return {"overall": overall, "take_ids": np.asarray([take_of[id(f)] for f in test]),
            "real": real, "synthetic": synthetic,
            "confusion": {"zero_shot": confusion_matrix(y, overall.zero_shot, n).tolist(),
                          "head": confusion_matrix(y, overall.head, n).tolist()}}


def decide_step(test: dict, split: Split, rule: VerdictRule) -> dict:
    """The verdict on the test takes (gain, its bootstrap interval, every condition)."""
    return decide(test["overall"], test["take_ids"], test["real"], test["synthetic"], rule,
                  optimistic=bool(split.optimistic))


def blend_warnings(chosen, prompts: PromptSpec) -> list[str]:
    if chosen.blend < 1.0:
        return []
    what = "its label_prompts and templates" + (" (including the --label-prompt overrides "
                                                 "given here)" if prompts.label_prompts else "")
    return [f"validation chose blend 1.0: with this head loaded at its stored blend, the node's "
            f"zero-shot side has no weight, so {what} no longer change the answers; set the "
            "node's adapter_blend below 1 to keep them in play"]


def write_step(out: Path, report: dict, chosen, labels, prompts: PromptSpec,
               augmenter: Augmenter, train: TrainSpec) -> dict:
    """Write the head and its metadata (if the verdict says so) and the JSON + PNG report."""
    stem = out.with_suffix("")
    verdict = report["verdict"]
    if verdict["written"]:
        aug_file = augmenter.save(Path(f"{stem}.augmentation.json")) if train.draws > 0 else None
        metadata = {
            "model_identifier": report["model_identifier"], "weights_hash": report["weights_hash"],
            "embed_dim": report["embed_dim"], "labels": list(labels),
            "templates": list(prompts.templates),
            "label_prompts": {k: list(v) for k, v in prompts.label_prompts.items()},
            "blend": chosen.blend, "hidden": train.head.hidden, "head": chosen.variant,
            "encoder": report["encoder"],
            "augmentation": {**augmenter.describe(), "draws_per_frame": train.draws,
                             "file": aug_file.name if aug_file else None},
            "metrics": {"verdict": {k: verdict[k] for k in ("gain", "gain_ci_low", "per_condition")},
                        "optimistic": report["optimistic"]},
            "created": report["created"],
        }
        save_adapter(out, chosen.model.head.tensors, metadata)
        report["augmentation_file"] = str(aug_file) if aug_file else None
    report["head_path"] = str(out) if verdict["written"] else None
    report["report_png"] = str(write_png(f"{stem}.report.png", report))
    report["report_json"] = f"{stem}.report.json"
    write_json(report["report_json"], report)
    return report


def train_adapter(model: ModelSpec, sources: SourceSpec, prompts: PromptSpec, train: TrainSpec,
                  progress: bool | None = None, encoder=None) -> dict:
    """Run every step; returns the report (also written as JSON beside the output).

    ``encoder`` overrides the one built from ``model`` (tests pass a call-counting one).
    """
    out = Path(train.output)
    if out.suffix != ".safetensors":
        raise TrainingInputError(f"--output must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(train.augmentation_config) if train.augmentation_config else default_pipeline()
    augmenter = Augmenter(pipeline, train.augmentation_seed, train.draws)
    clip, cache = load_model(model)
    try:
        loaded = load_frames(sources, prepare_fn(clip, model.preprocess_resize), progress)
        labels = loaded.labels
        split = split_step(loaded, train)  # before the encoder: too few takes fails at once
        classifier = zero_shot_classifier(clip, labels, prompts)
        encoder = create_encoder(model, clip, encoder)
        extractor = FeatureExtractor(clip, encoder, cache, model.encode_batch, progress,
                                     model.preprocess_resize)
        features = features_step(extractor, loaded, split, augmenter)
        chosen, candidates = train_step(features, split, labels, classifier, train, progress)
        test = evaluate_step(features, split, labels, classifier, chosen)
        verdict = decide_step(test, split, train.verdict)
        holdout = leave_one_condition_out(loaded.frames, labels, split, features.original,
                                          features.draws, features.held_draws, chosen,
                                          classifier, train.head, train.gap_s, progress)
        warnings = blend_warnings(chosen, prompts)
        for w in warnings:
            logger.warning(w)
        report = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model_identifier": clip.identifier, "weights_hash": clip.weights_hash,
            "embed_dim": clip.embed_dim, "encoder": describe_encoder(encoder),
            "preprocess_resize": model.preprocess_resize,
            "labels": labels, "sources": sources.describe(), "read": loaded.stats.to_dict(),
            "split": split.describe(),
            "split_details": {
                "takes_per_label": {s: takes_per_label(split.takes[s], labels) for s in split.takes},
                "frames": {s: len(split.frames(s)) for s in split.takes},
                "dropped_at_gap": split.dropped_gap, "gap_seconds": train.gap_s,
                "val_fraction": train.val_fraction, "test_fraction": train.test_fraction,
                "seed": train.split_seed, "cut_labels": split.optimistic,
                "entry_conditions": split.conditions()},
            "optimistic": bool(split.optimistic),
            "augmentation": {**{k: v for k, v in augmenter.describe().items() if k != "pipeline"},
                             "validation_draws_per_frame": len(features.held_draws)},
            "head_config": train.head.to_dict(),
            "selection": {"blend_grid": list(train.blend_grid), "chosen": chosen.describe(),
                          "candidates": [c.describe() for c in candidates]},
            "test": {"confusion": test["confusion"]},
            "leave_one_condition_out": holdout, "verdict": verdict, "warnings": warnings,
            "feature_cache": {"path": str(cache.path) if cache else None,
                              "hits": extractor.hits, "encoded": extractor.encoded},
        }
        report = write_step(out, report, chosen, labels, prompts, augmenter, train)
        report["summary"] = format_summary(report)
        return report
    finally:
        if cache is not None:
            cache.close()
