"""What a training or evaluation run computes with: the CLIP model, the image encoder the node
will serve (opened by ``core.encoders`` from the same options and defaults as the node), the
feature cache and the zero-shot classifier of ``core.scoring``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..core import encoders as core_encoders
from ..core.encoders import DEFAULT_MODEL, EncoderSpec
from ..core.scoring import ZeroShotClassifier
from ..core.backends.text_torch import TorchTextEncoder
from ..core.preprocess import DEFAULT_RESIZE
from ..core.prompts import DEFAULT_TEMPLATES, PromptEmbeddingCache, validate_templates
from .data import TrainingInputError
from .features import FeatureCache


@dataclass
class ModelSpec:
    """The node's engine options (same defaults: core.encoders.EncoderSpec) plus the run's own."""

    model: str = DEFAULT_MODEL
    pretrained: str | None = None  # the model's default ('openai' for an architecture name)
    device: str = "auto"
    backend: str = "auto"  # the node's defaults: features come from the engine it serves
    precision: str = "auto"
    threads: int = 0
    cache_dir: str | None = None
    use_feature_cache: bool = True
    encode_batch: int = 32
    preprocess_resize: str = DEFAULT_RESIZE  # the node's 'preprocess_resize'

    def encoder_spec(self) -> EncoderSpec:
        """The engine options as core.encoders takes them. ``auto`` waits for a TensorRT
        build instead of encoding with a stand-in meanwhile, so every feature comes from the
        one engine; one encoder call takes ``encode_batch`` images."""
        return EncoderSpec(model=self.model, pretrained=self.pretrained, backend=self.backend,
                           precision=self.precision, device=self.device,
                           cache_dir=self.cache_dir, threads=self.threads,
                           max_batch=self.encode_batch,
                           preprocess_resize=self.preprocess_resize, background_build=False)


@dataclass
class PromptSpec:
    templates: Sequence[str] = DEFAULT_TEMPLATES
    label_prompts: Mapping[str, Sequence[str]] = field(default_factory=dict)


def load_model(spec: ModelSpec):
    """(CLIP model, feature cache or None)."""
    try:
        encoder_spec = spec.encoder_spec().resolved()
    except ValueError as exc:  # e.g. an invalid --device
        raise TrainingInputError(str(exc)) from exc
    clip = core_encoders.load_model(encoder_spec)
    cache = FeatureCache.for_model(clip, spec.cache_dir) if spec.use_feature_cache else None
    return clip, cache


def create_encoder(spec: ModelSpec, clip, encoder=None):
    """The image encoder the node would serve with these options, built only after the frames
    were read (an export or engine build should not precede an input error)."""
    if encoder is not None:
        return encoder
    try:
        return core_encoders.open_image_encoder(spec.encoder_spec(), clip)
    except ValueError as exc:  # an invalid option (BackendUnavailable is not one)
        raise TrainingInputError(str(exc)) from exc


def describe_encoder(encoder) -> dict:
    selection = getattr(encoder, "selection", None)
    return {"backend": getattr(encoder, "name", type(encoder).__name__),
            "precision": getattr(encoder, "precision", "fp32"),
            "selection": selection.summary() if selection is not None else None}


def zero_shot_classifier(clip, labels: Sequence[str], prompts: PromptSpec) -> ZeroShotClassifier:
    """The node's zero-shot classifier for ``labels`` (prompt ensembles of ``prompts``)."""
    try:
        templates = validate_templates(list(prompts.templates))
    except ValueError as exc:
        raise TrainingInputError(f"--templates: {exc}") from exc
    unknown = sorted(set(prompts.label_prompts) - set(labels))
    if unknown:
        raise TrainingInputError(f"--label-prompt given for {unknown}, which are not in the label "
                                 f"set {list(labels)}")
    cache = PromptEmbeddingCache(TorchTextEncoder(clip).encode)
    emb = cache.ensemble(list(labels), templates, dict(prompts.label_prompts))
    return ZeroShotClassifier(labels, emb, clip.logit_scale)


def prepare_fn(clip, resize: str = DEFAULT_RESIZE):
    from ..core.preprocess import Preprocessor

    return Preprocessor(clip.preprocess, resize).resize_crop
