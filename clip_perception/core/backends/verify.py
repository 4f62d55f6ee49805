"""Check an accelerated encoder against the torch fp32 reference before it is used.

Every engine (TensorRT), every reduced precision (int8, bf16) and every export is run on
natural photographs (photo_set.py) at batch 1 and at ``max_batch`` and compared with torch
fp32 on the same inputs. It is refused unless every embedding stays within cosine 0.999, a
frame's embedding does not depend on which other frames share its batch (cosine >= 0.99999),
and it makes fp32's decisions on >= 99 % of the photos, for two decisions: the top-1 label over
a generic label set, and the nearest image among the other photos (what the place memory ranks
by). Disagreements where fp32's own top-2 margin is within the noise the engine adds are ties,
forgiven while enough decisive photos remain (agreement.py has the rule).
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .agreement import Agreement, image_agreement, label_agreement
from .engine_cache import ArtifactRefused, atomic_write
from .photo_set import GENERIC_LABELS, LABEL_TEMPLATE, photo_batch
from .text_torch import TorchTextEncoder
from .torch_backend import TorchImageEncoder

logger = logging.getLogger(__name__)

DEFAULT_MIN_COSINE = 0.999
DEFAULT_MIN_TOP1 = 0.99
BATCH_INDEPENDENCE_COSINE = 0.99999  # frame alone vs the same frame among others
BATCH1_VIEWS = 8  # photos also run one at a time (spread over the set)
VERIFY_MAX_BATCH = 8
REFERENCE_FORMAT = 1  # of the persisted reference embeddings: change with their layout


@dataclass(frozen=True)
class Verification:
    """Outcome of comparing a candidate's embeddings with the reference on fixed inputs."""

    ok: bool
    min_cosine: float
    threshold: float
    reason: str = ""
    top1_agreement: float = math.nan  # label top-1 over all photos, ties counted (strict)
    batch_cosine: float = math.nan  # min cosine, frame alone vs batched (nan: not measured)
    labels: Agreement | None = None  # the decisions, judged with ties forgiven
    images: Agreement | None = None

    def __str__(self) -> str:
        if self.reason:
            return self.reason
        text = f"min cosine {self.min_cosine:.5f} >= {self.threshold}"
        decisions = [a for a in (self.labels, self.images) if a is not None]
        if decisions:
            text += "".join(f", {a}" for a in decisions)
        elif not math.isnan(self.top1_agreement):
            text += f", top-1 agreement {self.top1_agreement:.1%}"
        if not math.isnan(self.batch_cosine):
            text += f", batch-independent (cosine {self.batch_cosine:.6f})"
        return text


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(axis=1)
    return num / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def compare_embeddings(candidate: np.ndarray, reference: np.ndarray,
                       threshold: float = DEFAULT_MIN_COSINE,
                       what: str = "candidate") -> Verification:
    """Row-wise cosine between two (N, D) embedding sets; ok when every row >= threshold."""
    candidate = np.asarray(candidate, np.float32)
    reference = np.asarray(reference, np.float32)
    if candidate.shape != reference.shape:
        return Verification(False, float("nan"), threshold,
                            f"{what} output shape {candidate.shape} != reference {reference.shape}")
    if not np.all(np.isfinite(candidate)):
        return Verification(False, float("nan"), threshold,
                            f"{what} produced non-finite values (NaN/inf; fp16 overflow?)")
    cos = float(_row_cosines(candidate, reference).min())
    if cos < threshold:
        return Verification(False, cos, threshold,
                            f"{what} min cosine to reference {cos:.5f} < required {threshold}")
    return Verification(True, cos, threshold, "")


def batch1_rows(count: int, views: int = BATCH1_VIEWS) -> list:
    """Row indices also run one at a time: ``views`` of them, spread over ``count`` rows."""
    views = min(views, count)
    return sorted({int(i * count / views) for i in range(views)})


def check_agreement(encoder, inputs, reference, label_embeddings, max_batch,
                    threshold=DEFAULT_MIN_COSINE, min_top1=DEFAULT_MIN_TOP1,
                    gallery=None) -> Verification:
    """``encoder`` on ``inputs`` in batches of ``max_batch`` and, for a few rows, alone; every
    row within ``threshold``, batch-independent, and fp32's label top-1 and nearest image
    (among the other inputs, or in the fixed fp32 ``gallery``) on >= ``min_top1`` of the rows,
    ties forgiven (agreement.py)."""
    what = encoder.describe() if hasattr(encoder, "describe") else type(encoder).__name__
    rows = batch1_rows(len(inputs))
    try:
        batched = np.concatenate([encoder.encode_images(inputs[i:i + max_batch])
                                  for i in range(0, len(inputs), max_batch)])
        alone = np.concatenate([encoder.encode_images(inputs[i:i + 1]) for i in rows])
    except Exception as exc:  # a broken engine must be refused, not crash the caller
        return Verification(False, math.nan, threshold, f"{what} failed on verification "
                                                      f"inputs: {type(exc).__name__}: {exc}")
    for label, out, ref in ((f"batch {max_batch}", batched, reference),
                            ("batch 1", alone, reference[rows])):
        v = compare_embeddings(out, ref, threshold, f"{what} at {label}")
        if not v.ok:
            return v
    cos = float(min(_row_cosines(batched, reference).min(),
                    _row_cosines(alone, reference[rows]).min()))
    labels = label_agreement(batched, reference, label_embeddings, min_top1)
    images = (image_agreement(batched, reference, min_top1, gallery)
              if gallery is not None or len(inputs) > 2 else None)
    coupled = float(_row_cosines(alone, batched[rows]).min())
    reason = ""
    if coupled < BATCH_INDEPENDENCE_COSINE:
        reason = (f"{what} gives a frame a different embedding alone than among {max_batch} "
                  f"(cosine {coupled:.6f} < {BATCH_INDEPENDENCE_COSINE}): batch-dependent")
    else:
        failed = [a for a in (labels, images) if a is not None and not a.ok]
        if failed:
            reason = (f"{what} disagrees with fp32: " + "; ".join(map(str, failed)) +
                      f" < required {min_top1:.0%} (min cosine {cos:.5f})")
    return Verification(not reason, cos, threshold, reason, labels.agreement, coupled,
                        labels, images)


def require_verified(encoder, reference, min_cosine, path) -> None:
    """Close ``encoder`` and raise engine_cache.ArtifactRefused (with the reason) unless it
    passes ``reference.verify``; ``path`` names the model file in the message."""
    verification = reference.verify(encoder, min_cosine)
    if not verification.ok:
        encoder.close()
        msg = f"{encoder.name} {encoder.precision} model {path} refused: {verification}"
        logger.warning(msg)
        raise ArtifactRefused(msg, verification, path)


class TorchReference:
    """Torch fp32 embeddings of the natural verification photos and of a generic label set,
    computed once per model and reused by every candidate.

    With ``persist_dir`` they are also kept on disk (~15 s of torch per node start on 2 cores),
    keyed by the exact preprocessed inputs, the label prompts, the weights and the torch
    version, so a changed photo set, preprocessing or checkpoint is recomputed, never reused.
    Thread-safe: a background engine build and the caller may both ask for it.
    """

    def __init__(self, clip, max_batch: int = VERIFY_MAX_BATCH, persist_dir=None):
        self.clip = clip
        self.max_batch = max_batch
        self.persist_dir = persist_dir
        self._inputs = None
        self._embeddings = None
        self._labels = None
        self._lock = threading.Lock()

    @property
    def inputs(self) -> np.ndarray:
        with self._lock:
            if self._inputs is None:
                self._inputs = photo_batch(self.clip.preprocess)
            return self._inputs

    @property
    def embeddings(self) -> np.ndarray:
        inputs = self.inputs
        with self._lock:
            if self._embeddings is None and not self._load_persisted(inputs):
                enc = self.torch_encoder()
                self._embeddings = np.concatenate(
                    [enc.encode_images(inputs[i:i + self.max_batch])
                     for i in range(0, len(inputs), self.max_batch)])
                self._persist(inputs)
            return self._embeddings

    def torch_encoder(self):
        """The fp32 reference encoder itself (for frames other than the photos)."""
        return TorchImageEncoder(self.clip)

    @property
    def label_embeddings(self) -> np.ndarray:
        if self.persist_dir is not None:
            _ = self.embeddings  # loads both from disk, or computes and stores both
        with self._lock:
            if self._labels is None:
                self._labels = self._encode_labels()
            return self._labels

    def _encode_labels(self) -> np.ndarray:
        return TorchTextEncoder(self.clip).encode(
            [LABEL_TEMPLATE.format(label) for label in GENERIC_LABELS])

    def _persisted_path(self, inputs: np.ndarray):
        import torch

        h = hashlib.sha256()
        for part in (REFERENCE_FORMAT, self.clip.identifier, self.clip.weights_hash,
                     torch.__version__, LABEL_TEMPLATE, "|".join(GENERIC_LABELS),
                     inputs.shape, inputs.dtype):
            h.update(repr(part).encode())
        h.update(np.ascontiguousarray(inputs).tobytes())
        return Path(self.persist_dir) / f"reference-{h.hexdigest()[:16]}.npz"

    def _load_persisted(self, inputs: np.ndarray) -> bool:
        """Caller holds the lock. True when both embedding sets came from a matching file."""
        if self.persist_dir is None:
            return False
        path = self._persisted_path(inputs)
        try:
            with np.load(path) as f:
                images, labels = f["images"], f["labels"]
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # a torn or foreign file: recompute
            logger.warning("reference embeddings %s unreadable (%s); recomputing", path, exc)
            return False
        if images.shape[0] != len(inputs) or labels.shape[1] != images.shape[1]:
            logger.warning("reference embeddings %s have shapes %s/%s for %d inputs; "
                           "recomputing", path, images.shape, labels.shape, len(inputs))
            return False
        self._embeddings, self._labels = images, labels
        return True

    def _persist(self, inputs: np.ndarray) -> None:
        """Caller holds the lock: store the image and label embeddings, atomically."""
        if self.persist_dir is None:
            return
        if self._labels is None:
            self._labels = self._encode_labels()
        path = self._persisted_path(inputs)
        data = io.BytesIO()
        np.savez(data, images=self._embeddings, labels=self._labels)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data.getvalue())
        except OSError as exc:  # only the next start's speed depends on it
            logger.warning("could not store reference embeddings at %s (%s); the next start "
                           "computes them again", path, exc)

    def verify(self, encoder, threshold: float = DEFAULT_MIN_COSINE,
               min_top1: float = DEFAULT_MIN_TOP1, max_batch: int | None = None) -> Verification:
        """``max_batch``: the largest batch ``encoder`` accepts (an engine's profile), default
        this reference's."""
        return check_agreement(encoder, self.inputs, self.embeddings, self.label_embeddings,
                               max_batch or self.max_batch, threshold, min_top1)
