"""The one interface every image backend implements."""
from __future__ import annotations

import abc

import numpy as np

from ..errors import ClipPerceptionError

# Shared by ONNX export and every loader of the exported file (onnxruntime, TensorRT).
ONNX_INPUT_NAME = "pixel_values"
ONNX_OUTPUT_NAME = "image_embeds"


class BackendUnavailable(ClipPerceptionError, RuntimeError):
    """A backend cannot run here; the message names what is missing."""


class MissingCapability(BackendUnavailable):
    """This machine lacks what the engine needs (a library, a GPU, a CPU feature): the one
    reason for skipping a candidate that is not an error. ``lacks`` names it."""

    def __init__(self, message: str, lacks: str):
        super().__init__(message)
        self.lacks = lacks


class ImageEncoder(abc.ABC):
    """``encode_images((N, 3, S, S) float32) -> (N, D) float32``, rows L2-normalised."""

    name: str = "base"
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0  # CPU threads the engine runs on; 0 = not a CPU thread pool (torch, GPU)
    # One call with N frames costs less per frame than N calls. False for an engine that runs
    # frames one at a time anyway: the node then takes one frame per call, so with several
    # cameras each result waits for one engine period, not for the whole round's.
    batches: bool = True

    @abc.abstractmethod
    def encode_images(self, batch: np.ndarray) -> np.ndarray:
        ...

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.device})"

    def close(self) -> None:
        """Release resources (sessions, engines); default: nothing to do."""


def check_batch(batch: np.ndarray, image_size: int) -> np.ndarray:
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1:] != (3, image_size, image_size):
        got = getattr(batch, "shape", type(batch).__name__)
        raise ValueError(f"expected a (N, 3, {image_size}, {image_size}) batch, got {got}")
    if batch.shape[0] == 0:
        raise ValueError("empty batch")
    return np.ascontiguousarray(batch, dtype=np.float32)
