"""The current label set and the background thread that builds requested ones, swapped by
reference so a label change never stalls frames.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..errors import ClipPerceptionError
from .snapshot import LabelSet
from .spec import LabelSetSpec

logger = logging.getLogger(__name__)


class LabelSetManager:
    """Holds the current LabelSet; builds requested ones in a background thread.

    ``request`` returns at once. The newest request is built next (older, not yet started
    requests are skipped: each request is a complete spec). Frames keep being scored with
    ``current`` until the new set is ready; then the reference is replaced in one assignment.
    """

    def __init__(self, build: Callable[[LabelSetSpec, int], LabelSet], initial: LabelSet):
        self._build = build
        self.current: LabelSet = initial
        self._cond = threading.Condition()
        self._pending: Optional[tuple[LabelSetSpec, int]] = None
        self._next_version = initial.version + 1
        self._building_version: Optional[int] = None
        self.last_error: str = ""
        self.failed_version: Optional[int] = None
        self.builds = 0
        self.last_build_seconds = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="label_set_builder", daemon=True)
        self._thread.start()

    def request(self, spec: LabelSetSpec) -> int:
        """Schedule ``spec``; returns the version the resulting LabelSet will carry."""
        with self._cond:
            version = self._next_version
            self._next_version += 1
            self._pending = (spec, version)
            self._cond.notify_all()
            return version

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._building_version is not None

    def wait_for(self, version: int, timeout: float) -> bool:
        """True once ``current.version >= version`` (or that version failed); for tests/tools."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.current.version < version and not (
                    self.failed_version is not None and self.failed_version >= version):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self.current.version >= version

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                spec, version = self._pending
                self._pending = None
                self._building_version = version
            start = time.perf_counter()
            try:
                label_set = self._build(spec, version)
            except Exception as exc:  # keep serving the old set; diagnostics shows the error
                if isinstance(exc, ClipPerceptionError):  # bad input: the reason says it all
                    logger.error("building label set v%d failed: %s", version, exc)
                else:
                    logger.exception("building label set v%d failed", version)
                with self._cond:
                    self.last_error = f"label set v{version} failed to build: {exc}"
                    self.failed_version = version
                    self._building_version = None
                    self._cond.notify_all()
                continue
            with self._cond:
                self.current = label_set  # the one atomic swap
                self.builds += 1
                self.last_build_seconds = time.perf_counter() - start
                self._building_version = None
                self._cond.notify_all()
