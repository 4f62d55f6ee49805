"""Is the pipeline alive? Judged once per diagnostics tick from counters, no per-frame cost.

WARN ("stalled") when frames are waiting but the worker has handled none for ``stall_timeout``
seconds (a hung encoder, a deadlock); ERROR when the worker thread is dead, or when the last
``failure_limit`` batches all failed and none succeeded since (an encoder that keeps failing).
A camera that simply stops sending is idle, not stalled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..core.pipeline import StatsSnapshot
from .diagnostics import ERROR, OK, WARN

DEFAULT_STALL_TIMEOUT = 5.0
FAILURE_LIMIT = 3  # consecutive failed batches before "keeps failing"


@dataclass(frozen=True)
class Liveness:
    level: int
    message: str


class LivenessMonitor:
    def __init__(self, stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                 failure_limit: int = FAILURE_LIMIT):
        self.stall_timeout = stall_timeout
        self.failure_limit = failure_limit
        self._processed = 0
        self._handled = 0  # frames the worker finished with: processed, rejected or failed
        self._errors_at_success = 0  # pipeline error count when a batch last succeeded
        self._waiting_since: Optional[float] = None

    def update(self, snap: StatsSnapshot, worker_alive: bool, now: float) -> Liveness:
        """``snap``: the pipeline counters (totals); ``now``: time.monotonic()."""
        cams = snap.cameras.values()
        processed = sum(c.processed for c in cams)
        handled = processed + sum(c.rejected + c.failed for c in cams)
        # Every received frame is dropped (replaced in its slot), handled, or still waiting
        # (in its slot or inside the encoder).
        waiting = sum(c.received - c.dropped for c in cams) > handled
        if processed > self._processed:
            self._errors_at_success = snap.errors
        if handled > self._handled or not waiting:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now
        self._processed, self._handled = processed, handled
        failures = snap.errors - self._errors_at_success
        if not worker_alive:
            return Liveness(ERROR, "perception worker thread is not running")
        if failures >= self.failure_limit:
            return Liveness(ERROR, f"encoder keeps failing: {failures} failed batches since the "
                                   f"last success; last: {snap.last_error}")
        if self._waiting_since is not None and now - self._waiting_since >= self.stall_timeout:
            return Liveness(WARN, f"stalled: frames are waiting but none was processed for "
                                  f"{now - self._waiting_since:.0f} s (stall_timeout "
                                  f"{self.stall_timeout:g} s)")
        return Liveness(OK, "")
