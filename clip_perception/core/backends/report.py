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
    # For a skip: what this machine lacks (a library, a GPU, a CPU feature). A skip without it
    # is a request no engine offers; "failed" is an error. Both are "unexplained".
    lacks: str = ""

    def __str__(self) -> str:
        text = f"{self.backend} {self.precision} on {self.device}: {self.outcome}"
        if self.lacks:
            text += f" [this machine lacks {self.lacks}]"
        return f"{text} ({self.reason})" if self.reason else text

    @property
    def unexplained(self) -> bool:
        """Skipped for a reason other than a missing capability, or failed: an error in a
        benchmark, a failure in a test."""
        return self.outcome == "failed" or (self.outcome == "skipped" and not self.lacks)


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

    @property
    def unexplained(self) -> list:
        """Attempts skipped for a reason other than a missing capability, or failed."""
        return [a for a in self.attempts if a.unexplained]

    def summary(self) -> str:
        return "; ".join(str(a) for a in self.attempts)

    def add(self, backend, precision, device, outcome, reason="", lacks="") -> None:
        attempt = BackendAttempt(backend, precision, device, outcome, reason, lacks)
        self.attempts.append(attempt)
        # A refusal, failure or unexplained skip is worth a warning; a missing capability not.
        log = logger.warning if outcome in ("refused", "failed") or attempt.unexplained \
            else logger.info
        log("image backend (%s requested): %s", self.requested, attempt)

    def skip(self, backend, precision, device, exc: Exception) -> None:
        """Record why ``exc`` (a BackendUnavailable) keeps this engine from serving: skipped
        when it is a missing capability, failed otherwise."""
        lacks = getattr(exc, "lacks", "")
        self.add(backend, precision, device, "skipped" if lacks else "failed", str(exc), lacks)


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
