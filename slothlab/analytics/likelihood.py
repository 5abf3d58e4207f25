"""A calibrated anomaly score: the likelihood that recent raw scores are unusual.

Like Numenta's AnomalyLikelihood: keep the mean and variance of raw anomaly scores over a long
window, average the last few raw scores, and take the Gaussian tail probability ``Q`` of that
average. The score is ``-log10(Q) / 10`` clipped to [0, 1], so 0.5 means "one in 10^5" and 1 means
"one in 10^10" (a log scale that, unlike ``1 - Q``, does not saturate at 1 in floating point).
An average at or below the long-run mean scores 0.

>>> lik = AnomalyLikelihood(long_window=100, short_window=1, learning=10)
>>> [lik.update(0.0) for _ in range(50)][-1]  # not above the usual: 0
0.0
>>> lik.update(1.0) > 0.9
True
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AnomalyLikelihood", "tail_score"]

_LOG10 = math.log(10.0)


def tail_score(z: float) -> float:
    """``-log10(Q(z)) / 10`` clipped to [0, 1], where Q is the standard normal tail.

    >>> tail_score(-3.0) < 0.001, round(tail_score(4.2649), 2), tail_score(9.0)
    (True, 0.5, 1.0)
    """
    if z > 6.4:  # Q(6.4) < 1e-10: the score is 1 and erfc would underflow soon after
        return 1.0
    q = 0.5 * math.erfc(z / math.sqrt(2.0))
    return min(1.0, max(0.0, -math.log(q) / _LOG10 / 10.0))


class AnomalyLikelihood:
    """Turn a stream of raw anomaly scores into calibrated scores in [0, 1].

    Args:
        long_window: rows of raw scores whose mean and variance describe "normal".
        short_window: rows averaged into the value that is tested against that.
        learning: rows scored 0 while the distribution is learnt.
        min_std: a floor on the standard deviation, so a perfectly quiet history does not make
            the first blip infinitely unlikely.
    """

    def __init__(
        self,
        long_window: int = 8640,
        short_window: int = 5,
        learning: int = 300,
        min_std: float = 0.03,
    ) -> None:
        self.long_window = long_window
        self.short_window = short_window
        self.learning = learning
        self.min_std = min_std
        self._long: deque[float] = deque()
        self._short: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._short_sum = 0.0
        self._seen = 0

    def update(self, raw: float) -> float:
        """Take the next raw score and return the calibrated score."""
        self._short.append(raw)
        self._short_sum += raw
        if len(self._short) > self.short_window:
            self._short_sum -= self._short.popleft()
        score = 0.0
        n = len(self._long)
        if self._seen >= self.learning and n:
            mean = self._sum / n
            excess = self._short_sum / len(self._short) - mean
            if excess > 0.0:  # at or below the mean is not unusual: score 0, skip the tail maths
                std = max(math.sqrt(max(self._sumsq / n - mean * mean, 0.0)), self.min_std)
                score = tail_score(excess / std)
        self._push(raw)
        self._seen += 1
        return score

    def _push(self, raw: float) -> None:
        self._long.append(raw)
        self._sum += raw
        self._sumsq += raw * raw
        if len(self._long) > self.long_window:
            old = self._long.popleft()
            self._sum -= old
            self._sumsq -= old * old
