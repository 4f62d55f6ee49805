"""THE way to open what the node serves: the CLIP model, its image encoder, the preprocessor and
the text encoder with its prompt cache, from one ``EncoderSpec`` whose defaults are the node's.

The node (ros/node.py), train_adapter / evaluate_prompts (training/engine.py) and build_memory /
query_memory (cli/memory_arguments.py) all open their engines here, so the same arguments give
the same engine everywhere: a memory built offline is queried by the node with the engine that
embedded it, and an adapter is trained on the features the node computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from .model import ClipModel, default_pretrained, load_clip
from .preprocess import DEFAULT_RESIZE, Preprocessor
from .prompts import PromptEmbeddingCache

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class EncoderSpec:
    """What to open; every default is the node's parameter default of the same name.

    ``pretrained``: None or "" = the model's own default (core.model.default_pretrained).
    ``device``: 'auto' = cuda when usable, else cpu. ``threads``: the node's
    ``encoder_threads`` (0 = every core). ``max_batch``: the largest batch one encoder call
    takes (TensorRT's profile; verification runs at it). ``background_build``: serve a CPU
    engine while TensorRT builds (the node); tools that must encode everything with one engine
    set it False and wait for the build.
    """

    model: str = DEFAULT_MODEL
    pretrained: Optional[str] = None
    backend: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    cache_dir: Optional[str] = None
    threads: int = 0
    max_batch: int = DEFAULT_MAX_BATCH
    preprocess_resize: str = DEFAULT_RESIZE
    text_backend: str = "auto"
    background_build: bool = True

    def resolved(self) -> "EncoderSpec":
        """The same spec with ``pretrained`` and ``device`` as they will be loaded and an empty
        ``cache_dir`` as None: two specs that open the same engine compare equal."""
        from .devices import resolve_device

        return replace(self, pretrained=default_pretrained(self.model, self.pretrained),
                       device=resolve_device(self.device), cache_dir=self.cache_dir or None)


@dataclass
class Encoders:
    """What ``open_encoders`` returns: the model and the engines opened for it."""

    spec: EncoderSpec
    clip: ClipModel
    image_encoder: object
    preprocessor: Preprocessor
    text_encoder: object
    prompt_cache: PromptEmbeddingCache = field(repr=False, default=None)

    def __post_init__(self):
        if self.prompt_cache is None:
            self.prompt_cache = PromptEmbeddingCache(self.text_encoder.encode)

    def images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) L2-normalised embeddings of HxWx3 uint8 RGB frames, as the node computes."""
        return self.image_encoder.encode_images(self.preprocessor(list(frames)))

    def texts(self, texts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """(N, D) prompt-ensemble embeddings of ``texts`` (as the node's landmarks)."""
        return self.prompt_cache.ensemble(list(texts), list(templates))

    def close(self) -> None:
        close = getattr(self.image_encoder, "close", None)
        if close is not None:
            close()


def load_model(spec: EncoderSpec) -> ClipModel:
    """The CLIP model of ``spec`` (its default ``pretrained`` when unset)."""
    s = spec.resolved()
    return load_clip(s.model, s.pretrained, s.device)


def open_image_encoder(spec: EncoderSpec, clip: ClipModel):
    """The image encoder the node serves for ``spec`` on an already loaded ``clip``."""
    from .backends import create_image_encoder

    s = spec.resolved()
    return create_image_encoder(clip, backend=s.backend, precision=s.precision, device=s.device,
                                cache_dir=s.cache_dir, threads=s.threads, max_batch=s.max_batch,
                                background_build=s.background_build)


def open_text_encoder(spec: EncoderSpec, clip: ClipModel):
    """The text encoder the node uses for label changes and queries (``auto``: the ONNX text
    tower when it imports and matches torch, else torch)."""
    from .backends.text_selection import create_text_encoder

    s = spec.resolved()
    return create_text_encoder(clip, s.text_backend, cache_dir=s.cache_dir, threads=s.threads)


def open_encoders(spec: EncoderSpec, clip: Optional[ClipModel] = None) -> Encoders:
    """Model (unless given), image encoder, preprocessor and text encoder for ``spec``."""
    spec = spec.resolved()
    clip = clip if clip is not None else load_model(spec)
    image_encoder = open_image_encoder(spec, clip)
    try:
        text_encoder = open_text_encoder(spec, clip)
    except BaseException:
        close = getattr(image_encoder, "close", None)
        if close is not None:
            close()
        raise
    return Encoders(spec, clip, image_encoder, Preprocessor(clip.preprocess,
                                                            spec.preprocess_resize),
                    text_encoder)
