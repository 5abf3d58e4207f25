"""A rolling z-score: the plain baseline the default detector is measured against.

The score is ``1 - exp(-|z| / 3)`` with ``z`` the distance of the value from the mean of the
previous ``window`` values in their standard deviations. Not calibrated across series; kept as
the reference point (it scores about 20–35 on NAB).

>>> det = ZScoreDetector(window=10)
>>> scores = det.score_batch([1.0, 2.0] * 10 + [50.0])
>>> float(scores[-1]) > 0.9
True
"""

from __future__ import annotations

import math
from collections import deque

from slothlab.analytics.base import Detector

__all__ = ["ZScoreDetector"]


class ZScoreDetector(Detector):
    """Distance from the rolling mean in rolling standard deviations, squashed to [0, 1).

    Args:
        window: how many previous values make the mean and deviation.
    """

    name = "zscore"

    def __init__(self, window: int = 100) -> None:
        self.window = window
        self._values: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0

    def update(self, value: float, ts: float | None = None) -> float:
        """Score one sample against the window before it."""
        x = float(value)
        if not math.isfinite(x):
            return 0.0
        n = len(self._values)
        score = 0.0
        if n >= 2:
            mean = self._sum / n
            std = math.sqrt(max(self._sumsq / n - mean * mean, 0.0))
            z = abs(x - mean) / (std + 1e-9 * (abs(mean) + 1.0))
            score = 1.0 - math.exp(-z / 3.0)
        self._values.append(x)
        self._sum += x
        self._sumsq += x * x
        if n + 1 > self.window:
            old = self._values.popleft()
            self._sum -= old
            self._sumsq -= old * old
        return score
