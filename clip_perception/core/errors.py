"""The package's one error base; each module raises a subclass a caller can act on."""
from __future__ import annotations


class ClipPerceptionError(Exception):
    """Base of every error clip_perception raises on purpose (bad input, missing pieces)."""
