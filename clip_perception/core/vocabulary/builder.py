"""Label sets for one loaded model, and whether a spec's adapter fits that model and its labels.

Two depths of the same adapter check: ``check`` reads only the adapter's metadata and tensor
header (cheap enough for a ROS parameter callback, so a wrong file is refused with its reason
at once); ``build`` loads the tensors and checks them again in full (the background label-set
builder's thread, where file I/O never holds up the executor).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Sequence

from ..adapter import AdapterError, AdapterHead, AdapterHeader, load_adapter, read_adapter_header
from ..prompts import PromptEmbeddingCache
from .snapshot import LabelSet, build_label_set
from .spec import LabelSetSpec, SpecError, count_prompts

logger = logging.getLogger(__name__)


def check_adapter_header(path: str, labels: Sequence[str], weights_hash: Callable[[], str],
                         embed_dim: int, model_identifier: str) -> AdapterHeader:
    """The adapter at ``path`` fits the model and ``labels`` as far as its metadata and tensor
    header tell (no tensor data read). Raises SpecError('adapter_path', reason)."""
    return _fitting(read_adapter_header, path, labels, weights_hash, embed_dim, model_identifier)


def load_checked_adapter(path: str, labels: Sequence[str], weights_hash: Callable[[], str],
                         embed_dim: int, model_identifier: str) -> AdapterHead:
    """Load the adapter at ``path`` and check it fits the model and ``labels``; rows reordered.

    ``weights_hash`` is a callable because hashing every weight costs ~0.5 s for ViT-B-32 and
    is only needed when an adapter is used. Raises SpecError('adapter_path', reason).
    """
    head = _fitting(load_adapter, path, labels, weights_hash, embed_dim, model_identifier)
    return head.reordered(labels)


def _fitting(read, path, labels, weights_hash, embed_dim, model_identifier):
    try:
        adapter = read(path)
        adapter.check_compatible(weights_hash(), embed_dim, model_identifier)
        adapter.check_labels(labels)
        return adapter
    except AdapterError as exc:
        raise SpecError("adapter_path", str(exc)) from None


class LabelSetBuilder:
    """Builds LabelSets from specs with one model's text side (``clip``, prompt ``cache``)."""

    def __init__(self, clip, cache: PromptEmbeddingCache):
        self._cache = cache
        self._logit_scale, self._embed_dim = clip.logit_scale, clip.embed_dim
        self._identifier = clip.identifier
        # Hashed here (configure), so ``check`` in a parameter callback is a string compare; on
        # CPU the engine cache keys have computed it already.
        self._weights_hash = clip.weights_hash

    def check(self, spec: LabelSetSpec) -> None:
        """Cheap: raise SpecError if ``spec``'s adapter visibly does not fit (see module doc)."""
        if spec.adapter_path:
            check_adapter_header(spec.adapter_path, spec.labels, self._hash, self._embed_dim,
                                 self._identifier)

    def build(self, spec: LabelSetSpec, version: int) -> LabelSet:
        """The adapter (read from disk now, fully checked) and the embeddings of ``spec``."""
        start = time.perf_counter()
        adapter: Optional[AdapterHead] = None
        if spec.adapter_path:
            adapter = load_checked_adapter(spec.adapter_path, spec.labels, self._hash,
                                           self._embed_dim, self._identifier)
        label_set = build_label_set(spec, self._cache, self._logit_scale, self._embed_dim,
                                    version, adapter)
        logger.info("label set v%d ready: %d labels, %d landmarks, %d prompts, %.0f ms", version,
                    len(spec.labels), len(spec.landmarks), count_prompts(spec),
                    (time.perf_counter() - start) * 1000)
        return label_set

    def _hash(self) -> str:
        return self._weights_hash
