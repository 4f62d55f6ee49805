"""evaluate_prompts as a library call: zero-shot (and optionally a head, loaded as the node
loads it) over all labelled frames, per lighting condition."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.adapter import AdapterError, load_adapter
from .augment import CONDITIONS, condition_key
from .data import TrainingInputError
from .engine import (ModelSpec, PromptSpec, create_encoder, describe_encoder, load_model,
                     prepare_fn, zero_shot_classifier)
from .evaluate import BlendedHead, evaluate_methods
from .features import FeatureExtractor, ViewJob
from .sources import SourceSpec, load_frames


def _load_head(path: str, clip):
    try:
        head = load_adapter(path)
        head.check_compatible(clip.weights_hash, clip.embed_dim, clip.identifier)
    except AdapterError as exc:
        raise TrainingInputError(str(exc)) from exc
    return head


def evaluate_prompts(model: ModelSpec, sources: SourceSpec, prompts: PromptSpec,
                     adapter_path: str | None = None, blend: float | None = None,
                     conditions: Sequence[str] = ("original",), progress: bool | None = None,
                     encoder=None) -> dict:
    """Accuracy of zero-shot (and the head) on every labelled frame under ``conditions``."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise TrainingInputError(f"unknown lighting condition(s) {unknown or '(none given)'}; "
                                 f"expected some of {list(CONDITIONS)}")
    if blend is not None and not 0.0 <= blend <= 1.0:
        raise TrainingInputError(f"blend must be in [0, 1], got {blend}")
    clip, cache = load_model(model)
    try:
        head = _load_head(adapter_path, clip) if adapter_path else None
        spec = sources
        if head is not None and sources.labels is None:
            spec = SourceSpec(**{**sources.__dict__, "labels": list(head.labels)})
        loaded = load_frames(spec, prepare_fn(clip, model.preprocess_resize), progress)
        labels = loaded.labels
        if head is not None:
            try:
                head = head.reordered(labels)
            except AdapterError as exc:
                raise TrainingInputError(str(exc)) from exc
        encoder = create_encoder(model, clip, encoder)
        extractor = FeatureExtractor(clip, encoder, cache, model.encode_batch, progress,
                                     model.preprocess_resize)
        names = [c for c in CONDITIONS if c in conditions]
        jobs = [ViewJob(loaded.frames, condition_key(c), None if c == "original" else CONDITIONS[c])
                for c in names]
        feats = dict(zip(names, extractor.embed(jobs)))
        classifier = zero_shot_classifier(clip, labels, prompts)
        methods = {"zero_shot": classifier.logits}
        if head is not None:
            b = head.default_blend if blend is None else blend
            methods["head"] = BlendedHead(head, classifier, b).logits
        metrics = evaluate_methods(feats, loaded.y, labels, methods)
        real = {}  # as recorded, per named lighting condition (--condition & co.)
        conds = np.asarray([f.condition for f in loaded.frames])
        if "original" in feats and len(set(conds) - {""}) > 0:
            for c in sorted(set(conds) - {""}):
                real[c] = evaluate_methods({c: feats["original"][conds == c]},
                                           loaded.y[conds == c], labels, methods)
        return {"model_identifier": clip.identifier, "labels": labels,
                "templates": list(prompts.templates),
                "label_prompts": {k: list(v) for k, v in prompts.label_prompts.items()},
                "adapter": adapter_path, "encoder": describe_encoder(encoder),
                "read": loaded.stats.to_dict(), "metrics": metrics, "real_conditions": real,
                "feature_cache": {"hits": extractor.hits, "encoded": extractor.encoded}}
    finally:
        if cache is not None:
            cache.close()
