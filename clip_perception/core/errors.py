"""The package's one error base; each module raises a subclass a caller can act on."""
from __future__ import annotations


class ClipPerceptionError(Exception):
    """Base of every error clip_perception raises on purpose (bad input, missing pieces)."""


class SettingError(ClipPerceptionError):
    """A setting that cannot be honoured: ``parameter`` names it, ``reason`` says why; the
    message is 'parameter: reason'."""

    def __init__(self, parameter: str, reason: str):
        super().__init__(f"{parameter}: {reason}")
        self.parameter, self.reason = parameter, reason
