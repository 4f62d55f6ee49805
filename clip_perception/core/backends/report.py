"""What encoder selection tried and why (``encoder.selection``), and its /diagnostics lines."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .base import ImageEncoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendAttempt:
    backend: str
    precision: str
    device: str
    outcome: str   # chosen | slower | skipped | refused | failed | building | serving until swap
    reason: str = ""

    def __str__(self) -> str:
        text = f"{self.backend} {self.precision} on {self.device}: {self.outcome}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass
class BackendSelection:
    """What create_image_encoder tried, in order, and why; attached as ``encoder.selection``."""

    requested: str
    precision: str
    device: str
    attempts: list = field(default_factory=list)

    @property
    def skipped(self) -> list:
        return [a for a in self.attempts if a.outcome in ("skipped", "refused", "failed")]

    def summary(self) -> str:
        return "; ".join(str(a) for a in self.attempts)

    def add(self, backend, precision, device, outcome, reason="") -> None:
        attempt = BackendAttempt(backend, precision, device, outcome, reason)
        self.attempts.append(attempt)
        # A refusal or failure is worth a warning; a skip for a missing library/GPU is not.
        log = logger.warning if outcome in ("refused", "failed") else logger.info
        log("image backend (%s requested): %s", self.requested, attempt)


def encoder_diagnostics(encoder: ImageEncoder) -> dict:
    """Key/value strings for a DiagnosticStatus: what serves, what was skipped and why, and the
    background engine build state when there is one."""
    out = {"image backend": encoder.describe()}
    threads = encoder.threads
    if threads:
        out["image backend threads"] = str(threads)
    selection = getattr(encoder, "selection", None)
    if selection is not None:
        out["backend requested"] = (f"{selection.requested} ({selection.precision}, "
                                    f"{selection.device})")
        for i, attempt in enumerate(selection.skipped):
            out[f"skipped {i + 1}"] = str(attempt)
        # precision: auto on a CPU: every verified candidate with its measured speed
        for i, attempt in enumerate(a for a in selection.attempts
                                    if a.outcome in ("chosen", "slower") and a.reason):
            out[f"candidate {i + 1}"] = str(attempt)
    recheck = getattr(encoder, "recheck", None)
    if callable(recheck):
        out["frame recheck"] = str(recheck())
    status = getattr(encoder, "status", None)
    if callable(status):
        s = status()
        out["engine build"] = s.state if not s.reason else f"{s.state}: {s.reason}"
        out["engine build seconds"] = f"{s.seconds:.1f}"
    return out
