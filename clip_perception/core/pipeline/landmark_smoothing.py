"""Per-camera smoothing of landmark cosines.
"""
from __future__ import annotations

import numpy as np


class LandmarkSmoother:
    """Per-camera exponential moving average of landmark cosines.

    ``smoothed = alpha * previous + (1 - alpha) * new``; alpha = 0 passes values through. The
    state restarts when the landmark set changes (different rows would otherwise be averaged).
    """

    def __init__(self):
        self._state: dict[str, tuple[tuple, np.ndarray]] = {}

    def apply(self, camera: str, key: tuple, values: np.ndarray, alpha: float) -> np.ndarray:
        previous = self._state.get(camera)
        if alpha > 0.0 and previous is not None and previous[0] == key:
            values = alpha * previous[1] + (1.0 - alpha) * values
        self._state[camera] = (key, values)
        return values
