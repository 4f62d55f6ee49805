"""What the small CLIP knows: zero-shot accuracy per scene attribute on held-out scenes,
through the package's own path (``core.model.load_clip``, the torch image encoder, the prompt
ensemble of ``core.prompts`` and ``core.scoring``'s classifier).

Held-out scenes use seeds the training pool never used (``EVAL_SEED_BASE`` and up) and, in the
``unseen pairs`` set, only the (colour, shape) pairs that training never rendered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..core.backends.text_torch import TorchTextEncoder
from ..core.backends.torch_backend import TorchImageEncoder
from ..core.preprocess import Preprocessor
from ..core.prompts import PromptEmbeddingCache
from ..core.scoring import ZeroShotClassifier
from . import synthetic_scenes as scenes

EVAL_SEED_BASE = 7_000_000  # training pools use seed * 1_000_003 + i with small seeds


@dataclass
class SmallClipProbe:
    """A loaded CLIP with its image encoder and prompt cache: images and prompts to embeddings."""

    clip: object
    threads: int = 1

    def __post_init__(self):
        self.encoder = TorchImageEncoder(self.clip, threads=self.threads)
        self.preprocessor = Preprocessor(self.clip.preprocess)
        self.prompts = PromptEmbeddingCache(TorchTextEncoder(self.clip).encode)

    def embed_images(self, images: Sequence[np.ndarray], batch: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch):
            crops = [self.preprocessor.resize_crop(img) for img in images[i:i + batch]]
            out.append(self.encoder.encode_images(self.preprocessor.normalize(np.stack(crops))))
        return np.concatenate(out) if out else np.zeros((0, self.clip.embed_dim), np.float32)

    def classifier(self, labels: Sequence[str], templates: Sequence[str],
                   overrides=None) -> ZeroShotClassifier:
        emb = self.prompts.ensemble(list(labels), list(templates), overrides)
        return ZeroShotClassifier(labels, emb, self.clip.logit_scale)


def held_out_scenes(n: int, seed: int = 0, unseen_pairs: bool = False, **fixed):
    """``n`` (scene, render seed) pairs from seeds training never used. ``unseen_pairs``: only
    the (colour, shape) pairs held out of training."""
    rng = np.random.default_rng(EVAL_SEED_BASE + seed)
    out = []
    for i in range(n):
        if unseen_pairs:
            colour, shape = scenes.HELD_OUT_PAIRS[i % len(scenes.HELD_OUT_PAIRS)]
            scene = scenes.draw_scene(rng, allow_held_out=True, colour=colour, shape=shape,
                                      **fixed)
        else:
            scene = scenes.draw_scene(rng, **fixed)
        out.append((scene, EVAL_SEED_BASE + seed * 100_000 + i))
    return out


def render_all(pairs, size: int, transform: Callable[[np.ndarray, int], np.ndarray] | None = None):
    images = [scenes.render(scene, s, size) for scene, s in pairs]
    if transform is not None:
        images = [transform(img, s) for img, (_, s) in zip(images, pairs)]
    return images


def attribute_accuracy(probe: SmallClipProbe, pairs, embeddings: np.ndarray,
                       attributes: Sequence[str] = tuple(scenes.ATTRIBUTE_PROMPTS)) -> dict:
    """{attribute: {"ensemble": acc, "one_template": acc, "chance": 1/n, "frames": n}} on the
    scenes where the attribute is defined (position: single shapes only)."""
    out = {}
    for attribute in attributes:
        labels, templates, single = scenes.ATTRIBUTE_PROMPTS[attribute]
        keep = [i for i, (scene, _) in enumerate(pairs) if attribute != "position" or scene.position]
        truth = np.array([labels.index(scenes.attribute_value_label(attribute, pairs[i][0]))
                          for i in keep])
        x = embeddings[keep]
        row = {"chance": round(1.0 / len(labels), 3), "frames": len(keep)}
        for name, temps in (("ensemble", templates), ("one_template", (single,))):
            pred = probe.classifier(labels, temps).logits(x).argmax(axis=1)
            row[name] = round(float((pred == truth).mean()), 4)
        out[attribute] = row
    return out


def kind_accuracy(probe: SmallClipProbe, pairs, embeddings: np.ndarray,
                  templates: Sequence[str] = scenes.KIND_TEMPLATES) -> dict:
    """Accuracy of naming the (colour, shape) kind among all 120 kinds, ensemble vs one."""
    labels = [f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES]
    truth = np.array([labels.index(scene.kind) for scene, _ in pairs])
    out = {"chance": round(1.0 / len(labels), 4), "frames": len(pairs)}
    for name, temps in (("ensemble", templates), ("one_template", templates[:1])):
        pred = probe.classifier(labels, temps).logits(embeddings).argmax(axis=1)
        out[name] = round(float((pred == truth).mean()), 4)
    return out
