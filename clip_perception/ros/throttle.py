"""Rate-limited warnings for the node's log: one per key per period, the rest counted."""
from __future__ import annotations

import time
from typing import Any, Callable


class WarningThrottle:
    """At most one warning per ``key`` every ``period`` seconds; counts what was suppressed."""

    def __init__(self, period: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.period = period
        self._clock = clock
        self._last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def allow(self, key: Any) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def take_suppressed(self, key: Any) -> int:
        return self.suppressed.pop(key, 0)
