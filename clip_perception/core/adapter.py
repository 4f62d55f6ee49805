"""The adapter head: a small residual MLP on frozen CLIP image embeddings.

Forward (same in torch training code and in this numpy inference code):
    h = x + fc2(relu(fc1(x)))            # residual; fc2 starts at zero, so h = x at init
    head_logits = logit_scale * normalize(h) @ classifier.weight.T + classifier.bias
The classifier starts as the labels' text embeddings, so an untrained head reproduces the
zero-shot classifier exactly. At inference the head is blended with zero-shot:
    logits = (1 - blend) * zero_shot_logits + blend * head_logits

On disk: ``<name>.safetensors`` (the tensors below) plus ``<name>.json`` (metadata: model
identifier, weights hash, embedding size, labels, templates, augmentation, metrics).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .embeddings import l2_normalize
from .errors import ClipPerceptionError

FORMAT = "clip_perception.adapter/1"
TENSOR_NAMES = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "classifier.weight",
                "classifier.bias", "logit_scale")


class AdapterError(ClipPerceptionError, ValueError):
    """An adapter file is missing, malformed or does not fit the model/labels in use."""


def metadata_path(weights_path: str | os.PathLike) -> Path:
    return Path(weights_path).with_suffix(".json")


@dataclass(frozen=True)
class AdapterHeader:
    """What an adapter file says about itself without its tensor data: the metadata and the
    tensors' shapes (the safetensors header). Names and shapes are checked on construction.

    The node checks a live ``adapter_path`` against this in its parameter callback (a stat and
    two small reads); the tensors are loaded in the background label-set build.
    """

    shapes: dict[str, tuple[int, ...]]
    metadata: dict = field(default_factory=dict)
    path: str = ""

    def __post_init__(self):
        missing = [n for n in TENSOR_NAMES if n not in self.shapes]
        if missing:
            raise AdapterError(f"adapter {self.path or '(in memory)'} lacks tensors {missing}")
        w1, w2, cls = (tuple(self.shapes[n]) for n in ("fc1.weight", "fc2.weight",
                                                        "classifier.weight"))
        if len(w1) != 2 or len(cls) != 2 or w1[1] != cls[1] or w2 != (cls[1], w1[0]):
            raise AdapterError(f"adapter tensors disagree: fc1 {w1}, fc2 {w2}, classifier {cls}")
        if len(self.labels) != cls[0]:
            raise AdapterError(f"adapter has {cls[0]} classifier rows but metadata lists "
                               f"{len(self.labels)} labels")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("labels", ()))

    @property
    def embed_dim(self) -> int:
        return int(self.shapes["classifier.weight"][1])

    def check_compatible(self, weights_hash: str, embed_dim: int, model_identifier: str = "") -> None:
        """Raise AdapterError if this head was trained on another model's embeddings."""
        if self.embed_dim != embed_dim:
            raise AdapterError(f"adapter {self.path} expects {self.embed_dim}-d embeddings, the model "
                               f"gives {embed_dim}-d (trained for {self.metadata.get('model_identifier')})")
        if self.metadata.get("weights_hash") != weights_hash:
            raise AdapterError(
                f"adapter {self.path} was trained on model {self.metadata.get('model_identifier')!r} "
                f"(weights {str(self.metadata.get('weights_hash'))[:12]}), not on the loaded model "
                f"{model_identifier!r} (weights {weights_hash[:12]})")

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise AdapterError unless ``labels`` are this head's labels (any order, no repeats)."""
        if sorted(labels) != sorted(self.labels) or len(set(labels)) != len(labels):
            raise AdapterError(f"adapter {self.path or ''} is trained for labels "
                               f"{list(self.labels)}, not {list(labels)}")


@dataclass
class AdapterHead:
    tensors: dict[str, np.ndarray]
    metadata: dict = field(default_factory=dict)
    path: str = ""
    header: AdapterHeader = field(init=False, repr=False)

    def __post_init__(self):
        self.header = AdapterHeader({k: np.shape(v) for k, v in self.tensors.items()},
                                    self.metadata, self.path)
        self.tensors = {k: np.asarray(v, np.float32) for k, v in self.tensors.items()}
        # Only the data can show this; a diverged training run writes NaN heads.
        bad = [k for k, v in self.tensors.items() if not np.isfinite(v).all()]
        if bad:
            raise AdapterError(f"adapter {self.path or '(in memory)'} has non-finite values "
                               f"(NaN/inf) in {bad}")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.header.labels

    @property
    def embed_dim(self) -> int:
        return self.header.embed_dim

    @property
    def default_blend(self) -> float:
        return float(self.metadata.get("blend", 1.0))

    def head_logits(self, image_emb: np.ndarray) -> np.ndarray:
        """(N, D) L2-normalised embeddings -> (N, L) head logits, labels in ``self.labels`` order."""
        t = self.tensors
        x = np.asarray(image_emb, np.float32)
        hidden = np.maximum(x @ t["fc1.weight"].T + t["fc1.bias"], 0.0)
        h = l2_normalize(x + hidden @ t["fc2.weight"].T + t["fc2.bias"])
        return float(t["logit_scale"].reshape(())) * (h @ t["classifier.weight"].T) + t["classifier.bias"]

    def blended_logits(self, image_emb: np.ndarray, zero_shot_logits: np.ndarray,
                       blend: float) -> np.ndarray:
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"adapter blend must be in [0, 1], got {blend}")
        return (1.0 - blend) * zero_shot_logits + blend * self.head_logits(image_emb)

    def reordered(self, labels: Sequence[str]) -> "AdapterHead":
        """The same head with classifier rows in ``labels`` order (must be the same label set)."""
        self.header.check_labels(labels)
        idx = [self.labels.index(label) for label in labels]
        tensors = dict(self.tensors)
        tensors["classifier.weight"] = self.tensors["classifier.weight"][idx]
        tensors["classifier.bias"] = self.tensors["classifier.bias"][idx]
        return AdapterHead(tensors, {**self.metadata, "labels": list(labels)}, self.path)

    def check_compatible(self, weights_hash: str, embed_dim: int, model_identifier: str = "") -> None:
        self.header.check_compatible(weights_hash, embed_dim, model_identifier)

    def check_labels(self, labels: Sequence[str]) -> None:
        self.header.check_labels(labels)


def save_adapter(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict) -> Path:
    """Write ``path`` (.safetensors) and its .json metadata; validates by constructing the head."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterError(f"adapter path must end in .safetensors, got {path}")
    meta = {"format": FORMAT, **metadata}
    AdapterHead(tensors, meta, str(path))  # validate before writing anything
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path))
    metadata_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


def read_adapter_header(path: str | os.PathLike) -> AdapterHeader:
    """The metadata and tensor shapes of the adapter at ``path``, no tensor data read."""
    from safetensors import safe_open

    path, meta = _read_metadata(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own untyped errors for a bad header
        raise AdapterError(f"cannot read adapter {path}: {exc}") from exc
    return AdapterHeader(shapes, meta, str(path))


def load_adapter(path: str | os.PathLike) -> AdapterHead:
    from safetensors.numpy import load_file

    path, meta = _read_metadata(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own untyped errors for a bad file
        raise AdapterError(f"cannot read adapter {path}: {exc}") from exc
    return AdapterHead(tensors, meta, str(path))


def _read_metadata(path: str | os.PathLike) -> tuple[Path, dict]:
    path = Path(os.path.expanduser(str(path)))
    meta_file = metadata_path(path)
    if not path.is_file():
        raise AdapterError(f"adapter file not found: {path}")
    if not meta_file.is_file():
        raise AdapterError(f"adapter metadata not found: {meta_file} (expected beside {path.name})")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot read adapter metadata {meta_file}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise AdapterError(f"{meta_file} has format {found!r}, expected {FORMAT!r}")
    return path, meta
