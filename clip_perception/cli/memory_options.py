"""Options and model plumbing shared by build_memory and query_memory (the node's code path:
load_clip, create_image_encoder, the preprocessor and the prompt cache)."""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np

from ..core.backends import BACKENDS, create_image_encoder
from ..core.memory.store import DEFAULT_COLLECTION, DEFAULT_URI
from ..core.model import load_clip
from ..core.preprocess import Preprocessor
from ..core.backends.text_selection import create_text_encoder
from ..core.prompts import PromptEmbeddingCache

EXIT_INPUT_ERROR = 2


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory")
    g.add_argument("--memory", default=DEFAULT_URI, metavar="DIR|FILE.db|URI",
                   help="memory folder (Milvus Lite file DIR/places.db), a '.db' file, or a "
                        "Milvus server URI such as http://fleet-memory:19530 (token from "
                        "$MILVUS_TOKEN) (default: %(default)s)")
    g.add_argument("--collection", default=DEFAULT_COLLECTION,
                   help="collection in the store (default: %(default)s)")


def add_model_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    """The node's model and encoder choices; without ``required`` the model defaults to the
    one the memory records."""
    g = p.add_argument_group("model")
    model_default = "%(default)s" if required else "the model the memory was built with"
    for flag, default, text in (
            ("--model", "ViT-B-32" if required else None,
             f"open_clip name, 'hf-hub:org/repo' or 'local-dir:/path' (default: {model_default})"),
            ("--pretrained", None, "pretrained tag or checkpoint (default: 'openai' for "
                                   "built-in names, empty for local-dir:/hf-hub:)"),
            ("--device", "cpu", "torch device (default: %(default)s)"),
            ("--cache-dir", None, "engine cache folder (default: $CLIP_PERCEPTION_CACHE_DIR, "
                                  "else ~/.cache/clip_perception)")):
        g.add_argument(flag, default=default, help=text)
    g.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="image encoder backend, fp32; torch/onnxruntime also for the text "
                        "tower (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("clip_perception").setLevel(logging.DEBUG if verbose else logging.INFO)


def default_pretrained(model: str, pretrained):
    if pretrained is None and not model.startswith(("local-dir:", "hf-hub:")):
        return "openai"
    return pretrained or None


@dataclass
class Encoders:
    """The model and the encoders the node uses, for frames, images and texts."""

    clip: object
    image_encoder: object
    preprocessor: Preprocessor
    cache_dir: str | None
    text_backend: str = "auto"

    @classmethod
    def load(cls, model: str, pretrained, device: str, backend: str, cache_dir) -> "Encoders":
        clip = load_clip(model, default_pretrained(model, pretrained), device)
        encoder = create_image_encoder(clip, backend=backend, precision="fp32", device=device,
                                       cache_dir=cache_dir)
        text_backend = backend if backend in ("torch", "onnxruntime") else "auto"
        return cls(clip, encoder, Preprocessor(clip.preprocess), cache_dir, text_backend)

    def images(self, frames: list[np.ndarray]) -> np.ndarray:
        return self.image_encoder.encode_images(self.preprocessor(frames))

    def texts(self, texts: list[str], templates) -> np.ndarray:
        encoder = create_text_encoder(self.clip, self.text_backend, cache_dir=self.cache_dir)
        return PromptEmbeddingCache(encoder.encode).ensemble(texts, templates)
