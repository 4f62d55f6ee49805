"""train_adapter and evaluate_prompts as library calls (the CLIs only parse arguments).

train: frames -> time-block split -> features (original, augmentation draws, evaluation
conditions; cached) -> a head without augmentation and a head with it -> accuracy of
zero-shot and both heads under every lighting condition -> head written unless worse than
zero-shot (or forced) -> JSON + PNG report.
"""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..core.adapter import AdapterError, load_adapter, save_adapter
from ..core.prompts import DEFAULT_TEMPLATES, PromptEmbeddingCache, validate_templates
from ..core.backends.text_torch import TorchTextEncoder
from .augment import CONDITIONS, Augmenter, condition_key, default_pipeline, load_pipeline
from .data import TrainingInputError
from .evaluate import evaluate_methods, write_decision
from .features import FeatureCache, FeatureExtractor, ViewJob
from .head import TrainConfig, train_head
from .report import format_table, write_json, write_png
from .sources import SourceSpec, load_frames
from .split import split_by_time

logger = logging.getLogger(__name__)


@dataclass
class ModelSpec:
    model: str = "ViT-B-32"
    pretrained: str | None = "openai"
    device: str = "cpu"
    backend: str = "torch"
    cache_dir: str | None = None
    use_feature_cache: bool = True
    encode_batch: int = 32


@dataclass
class PromptSpec:
    templates: Sequence[str] = DEFAULT_TEMPLATES
    label_prompts: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class TrainSpec:
    output: str
    val_fraction: float = 0.25
    block_seconds: float = 10.0
    split_gap_s: float = 1.0
    split_seed: int = 0
    augmentation_config: str | None = None
    augmentation_seed: int = 0
    draws: int = 8
    head: TrainConfig = field(default_factory=TrainConfig)
    force: bool = False


def _load_model(spec: ModelSpec):
    from ..core.model import load_clip

    clip = load_clip(spec.model, spec.pretrained, spec.device)
    cache = FeatureCache.for_model(clip, spec.cache_dir) if spec.use_feature_cache else None
    return clip, cache


def _create_encoder(spec: ModelSpec, clip, encoder=None):
    """The image encoder, built only after the frames were read: an export or engine build
    (seconds to minutes) should not come before an input error the user can fix at once."""
    if encoder is not None:
        return encoder
    from ..core.backends import create_image_encoder

    return create_image_encoder(clip, backend=spec.backend, device=spec.device,
                                cache_dir=spec.cache_dir)


def class_embeddings(clip, labels: Sequence[str], prompts: PromptSpec) -> np.ndarray:
    try:
        templates = validate_templates(list(prompts.templates))
    except ValueError as exc:
        raise TrainingInputError(f"--templates: {exc}") from exc
    unknown = sorted(set(prompts.label_prompts) - set(labels))
    if unknown:
        raise TrainingInputError(f"--label-prompt given for {unknown}, which are not in the label "
                                 f"set {list(labels)}")
    cache = PromptEmbeddingCache(TorchTextEncoder(clip).encode)
    return cache.ensemble(list(labels), templates, dict(prompts.label_prompts))


def _prepare_fn(clip):
    from ..core.preprocess import Preprocessor

    return Preprocessor(clip.preprocess).resize_crop


def _condition_jobs(frames):
    return [ViewJob(frames, condition_key(name), None if name == "original" else fn)
            for name, fn in CONDITIONS.items()]


def train_adapter(model: ModelSpec, sources: SourceSpec, prompts: PromptSpec, train: TrainSpec,
                  progress: bool | None = None, encoder=None) -> dict:
    """Run everything; returns the report dict (also written as JSON beside the output).

    ``encoder`` overrides the backend (tests pass a call-counting one).
    """
    out = Path(train.output)
    if out.suffix != ".safetensors":
        raise TrainingInputError(f"--output must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(train.augmentation_config) if train.augmentation_config else default_pipeline()
    augmenter = Augmenter(pipeline, train.augmentation_seed, train.draws)
    clip, cache = _load_model(model)
    try:
        loaded = load_frames(sources, _prepare_fn(clip), progress)
        encoder = _create_encoder(model, clip, encoder)
        labels = loaded.labels
        split = split_by_time(loaded.frames, labels, train.val_fraction, train.block_seconds,
                              train.split_gap_s, train.split_seed)
        index = {label: i for i, label in enumerate(labels)}
        ty = np.asarray([index[f.label] for f in split.train], np.int64)
        vy = np.asarray([index[f.label] for f in split.val], np.int64)
        logger.info("%d training and %d validation frames (%d dropped at block edges)",
                    len(split.train), len(split.val), split.dropped_gap)

        extractor = FeatureExtractor(clip, encoder, cache, model.encode_batch, progress)
        draw_jobs = [ViewJob(split.train, augmenter.draw_key(k),
                             lambda crop, digest, k=k: augmenter.apply(crop, digest, k))
                     for k in range(1, train.draws + 1)]
        feats = extractor.embed([ViewJob(split.train, "original")] + draw_jobs
                                + _condition_jobs(split.val), desc="encoding")
        train_orig, train_draws = feats[0], feats[1:1 + train.draws]
        val_by_condition = dict(zip(CONDITIONS, feats[1 + train.draws:]))

        cls = class_embeddings(clip, labels, prompts)
        scale = clip.logit_scale
        blend = train.head.blend
        head_plain, hist_plain = train_head(train_orig, ty, val_by_condition["original"], vy, cls,
                                            scale, train.head, progress, "head without augmentation")
        methods = {"zero_shot": lambda x: scale * x @ cls.T}
        heads = {"head_plain": head_plain}
        histories = {"head_plain": hist_plain}
        if train.draws > 0:
            aug_x = np.concatenate([train_orig] + train_draws)
            aug_y = np.tile(ty, 1 + train.draws)
            head_aug, hist_aug = train_head(aug_x, aug_y, val_by_condition["original"], vy, cls,
                                            scale, train.head, progress, "head with augmentation")
            heads["head_augmented"] = head_aug
            histories["head_augmented"] = hist_aug
        numpy_heads = {}
        for name, module in heads.items():
            from ..core.adapter import AdapterHead

            numpy_heads[name] = AdapterHead(module.numpy_tensors(), {"labels": labels})
            methods[name] = (lambda h: lambda x: h.blended_logits(x, scale * x @ cls.T, blend))(numpy_heads[name])
        metrics = evaluate_methods(val_by_condition, vy, labels, methods)
        chosen = "head_augmented" if train.draws > 0 else "head_plain"
        ok, reason = write_decision(metrics, chosen, train.force)

        stem = out.with_suffix("")
        report = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model_identifier": clip.identifier, "weights_hash": clip.weights_hash,
            "embed_dim": clip.embed_dim, "backend": getattr(encoder, "name", str(encoder)),
            "labels": labels, "sources": sources.describe(), "read": loaded.stats.to_dict(),
            "split": {"train_frames": len(split.train), "val_frames": len(split.val),
                      "dropped_at_block_edges": split.dropped_gap, "blocks": split.blocks,
                      "val_fraction": train.val_fraction, "block_seconds": train.block_seconds,
                      "gap_seconds": train.split_gap_s, "seed": train.split_seed},
            "augmentation": {k: v for k, v in augmenter.describe().items() if k != "pipeline"},
            "head_config": train.head.to_dict(), "training": histories,
            "feature_cache": {"path": str(cache.path) if cache else None,
                              "hits": extractor.hits, "encoded": extractor.encoded},
            "metrics": metrics, "written_head": chosen if ok else None, "decision": reason,
            "head_path": str(out) if ok else None,
        }
        if ok:
            aug_path = augmenter.save(Path(f"{stem}.augmentation.json")) if train.draws > 0 else None
            metadata = {
                "model_identifier": clip.identifier, "weights_hash": clip.weights_hash,
                "embed_dim": clip.embed_dim, "labels": labels,
                "templates": list(prompts.templates),
                "label_prompts": {k: list(v) for k, v in prompts.label_prompts.items()},
                "blend": blend, "hidden": train.head.hidden, "head": chosen,
                "augmentation": {**augmenter.describe(), "draws_per_frame": train.draws,
                                 "file": aug_path.name if aug_path else None},
                "metrics": {"accuracy": metrics["accuracy"], "n_val_frames": metrics["n_frames"],
                            "n_train_frames": len(split.train)},
                "created": report["created"],
            }
            save_adapter(out, numpy_heads[chosen].tensors, metadata)
            report["augmentation_file"] = str(aug_path) if aug_path else None
        report["report_png"] = str(write_png(f"{stem}.report.png", metrics,
                                             f"{clip.identifier} — {len(split.val)} validation frames"))
        report["report_json"] = f"{stem}.report.json"
        write_json(report["report_json"], report)
        report["table"] = format_table(metrics)
        return report
    finally:
        if cache is not None:
            cache.close()


def evaluate_prompts(model: ModelSpec, sources: SourceSpec, prompts: PromptSpec,
                     adapter_path: str | None = None, blend: float | None = None,
                     conditions: Sequence[str] = ("original",), progress: bool | None = None,
                     encoder=None) -> dict:
    """Zero-shot (and optionally a head, loaded as the node loads it) over all labelled frames."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise TrainingInputError(f"unknown lighting condition(s) {unknown or '(none given)'}; "
                                 f"expected some of {list(CONDITIONS)}")
    if blend is not None and not 0.0 <= blend <= 1.0:
        raise TrainingInputError(f"blend must be in [0, 1], got {blend}")
    clip, cache = _load_model(model)
    try:
        head = None
        if adapter_path:
            try:
                head = load_adapter(adapter_path)
                head.check_compatible(clip.weights_hash, clip.embed_dim, clip.identifier)
            except AdapterError as exc:
                raise TrainingInputError(str(exc)) from exc
        spec = sources
        if head is not None and sources.labels is None:
            spec = SourceSpec(**{**sources.__dict__, "labels": list(head.labels)})
        loaded = load_frames(spec, _prepare_fn(clip), progress)
        labels = loaded.labels
        if head is not None:
            try:
                head = head.reordered(labels)
            except AdapterError as exc:
                raise TrainingInputError(str(exc)) from exc
        encoder = _create_encoder(model, clip, encoder)
        extractor = FeatureExtractor(clip, encoder, cache, model.encode_batch, progress)
        jobs = [j for j in _condition_jobs(loaded.frames) if j.view in {condition_key(c) for c in conditions}]
        feats = dict(zip([c for c in CONDITIONS if c in conditions], extractor.embed(jobs)))
        cls = class_embeddings(clip, labels, prompts)
        scale = clip.logit_scale
        methods = {"zero_shot": lambda x: scale * x @ cls.T}
        if head is not None:
            b = head.default_blend if blend is None else blend
            methods["head"] = lambda x: head.blended_logits(x, scale * x @ cls.T, b)
        metrics = evaluate_methods(feats, loaded.y, labels, methods)
        return {"model_identifier": clip.identifier, "labels": labels,
                "templates": list(prompts.templates),
                "label_prompts": {k: list(v) for k, v in prompts.label_prompts.items()},
                "adapter": adapter_path, "read": loaded.stats.to_dict(), "metrics": metrics,
                "feature_cache": {"hits": extractor.hits, "encoded": extractor.encoded}}
    finally:
        if cache is not None:
            cache.close()
