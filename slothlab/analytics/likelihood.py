"""A calibrated anomaly score: the likelihood that recent raw scores are unusual.

Like Numenta's AnomalyLikelihood: keep the mean and variance of raw anomaly scores over a long
window, average the last few raw scores, and take the Gaussian tail probability ``Q`` of that
average. The score is ``-log10(Q) / 10`` clipped to [0, 1], so 0.5 means "one in 10^5" and 1 means
"one in 10^10" (a log scale that, unlike ``1 - Q``, does not saturate at 1 in floating point).
An average at or below the long-run mean scores 0.

The window sums are differences of running (cumulative) sums, the same additions in the same
order as ``numpy.cumsum``, so :func:`likelihood_batch` over an array gives bit-for-bit the scores
of :meth:`AnomalyLikelihood.update` in a loop.

>>> lik = AnomalyLikelihood(long_window=100, short_window=1, learning=10)
>>> [lik.update(0.0) for _ in range(50)][-1]  # not above the usual: 0
0.0
>>> lik.update(1.0) > 0.9
True
>>> import numpy as np
>>> raw = np.r_[np.zeros(50), 1.0]
>>> bool(likelihood_batch(raw, 100, 1, 10)[-1] == AnomalyLikelihood(100, 1, 10).fit(raw))
True
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["AnomalyLikelihood", "likelihood_batch", "tail_score"]

_LOG10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)


def tail_score(z: float) -> float:
    """``-log10(Q(z)) / 10`` clipped to [0, 1], where Q is the standard normal tail.

    >>> tail_score(-3.0) < 0.001, round(tail_score(4.2649), 2), tail_score(9.0)
    (True, 0.5, 1.0)
    """
    if z > 6.4:  # Q(6.4) < 1e-10: the score is 1 and erfc would underflow soon after
        return 1.0
    q = 0.5 * math.erfc(z / _SQRT2)
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
        if not 1 <= short_window <= long_window:
            from slothlab.errors import AnalyticsError

            raise AnalyticsError(
                f"short_window={short_window} must be between 1 and long_window={long_window}"
            )
        self.long_window = long_window
        self.short_window = short_window
        self.learning = learning
        self.min_std = min_std
        # Running sums of the raw scores and their squares at the last long_window + 1 rows.
        self._cum: deque[float] = deque([0.0], maxlen=long_window + 1)
        self._cumsq: deque[float] = deque([0.0], maxlen=long_window + 1)
        self._seen = 0

    def update(self, raw: float) -> float:
        """Take the next raw score and return the calibrated score."""
        cum, cumsq = self._cum, self._cumsq
        now = cum[-1] + raw
        count = len(cum) - 1
        score = 0.0
        if self._seen >= self.learning and count:
            start = max(len(cum) - self.short_window, 0)
            recent = (now - cum[start]) / (len(cum) - start)
            mean = (cum[-1] - cum[0]) / count
            excess = recent - mean
            if excess > 0.0:  # at or below the mean is not unusual: score 0, skip the tail maths
                var = (cumsq[-1] - cumsq[0]) / count - mean * mean
                std = max(math.sqrt(max(var, 0.0)), self.min_std)
                score = tail_score(excess / std)
        cum.append(now)
        cumsq.append(cumsq[-1] + raw * raw)
        self._seen += 1
        return score

    def fit(self, raws: ArrayLike) -> float:
        """Take many raw scores in order; returns the last calibrated score (0 for none)."""
        score = 0.0
        for raw in np.asarray(raws, dtype=np.float64).ravel().tolist():
            score = self.update(raw)
        return score

    def restore(self, cum: NDArray[np.float64], cumsq: NDArray[np.float64]) -> None:
        """Take the state a fresh instance has after :func:`likelihood_batch` (its running sums).

        ``cum`` and ``cumsq`` are the running sums with a leading 0, one longer than the rows.
        """
        self._cum.clear()
        self._cum.extend(cum[-(self.long_window + 1) :].tolist())
        self._cumsq.clear()
        self._cumsq.extend(cumsq[-(self.long_window + 1) :].tolist())
        self._seen = len(cum) - 1


def running_sums(raw: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The running sums of ``raw`` and of its squares with a leading 0 (the same additions, in
    the same order, as :class:`AnomalyLikelihood` makes)."""
    return np.r_[0.0, np.cumsum(raw)], np.r_[0.0, np.cumsum(raw * raw)]


def likelihood_batch(
    raw: ArrayLike,
    long_window: int = 8640,
    short_window: int = 5,
    learning: int = 300,
    min_std: float = 0.03,
) -> NDArray[np.float64]:
    """What a fresh :class:`AnomalyLikelihood` returns for each raw score, vectorised."""
    values = np.asarray(raw, dtype=np.float64).ravel()
    cum, cumsq = running_sums(values)
    t = np.arange(values.size)
    lo = np.maximum(t - long_window, 0)
    count = t - lo
    slo = np.maximum(t + 1 - short_window, 0)
    live = (t >= learning) & (count > 0)
    safe = np.where(count > 0, count, 1)
    recent = (cum[t + 1] - cum[slo]) / (t + 1 - slo)
    mean = (cum[t] - cum[lo]) / safe
    excess = recent - mean
    hit = np.flatnonzero(live & (excess > 0.0))
    out = np.zeros(values.size)
    if hit.size:
        mean_h = mean[hit]
        var = (cumsq[hit] - cumsq[lo[hit]]) / safe[hit] - mean_h * mean_h
        std = np.maximum(np.sqrt(np.maximum(var, 0.0)), min_std)
        # The tail maths per hit row with the scalar function: the same bits as the stream.
        out[hit] = [tail_score(z) for z in (excess[hit] / std).tolist()]
    return out
