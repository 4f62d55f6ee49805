"""The place memory's errors: one base, a subclass for each case a caller acts on."""
from __future__ import annotations

from ..errors import ClipPerceptionError


class PlaceMemoryError(ClipPerceptionError):
    """The place memory cannot do what was asked; the message says what was received and
    what was expected."""


class PoseUnavailable(PlaceMemoryError):
    """No pose for an image stamp (not bracketed by the buffer within max_pose_gap, unknown
    frame, ...); the frame is not stored and is counted."""


class ModelMismatch(PlaceMemoryError):
    """The memory was built with another model or embedding size than the one asked to use it."""


class StoreError(PlaceMemoryError):
    """The vector store refused an operation (cannot open, schema mismatch, ...)."""
