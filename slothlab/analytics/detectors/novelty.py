"""The default univariate detector: range novelty plus a likelihood over value-bin novelty.

Two causal signals, both cheap per sample:

* **range novelty** — the value leaves the range of everything seen so far by more than ``tol``
  of that range (a new high or low; Numenta's "spatial anomaly"). Scored 0.7–1.0.
* **bin novelty** — after a warm-up the value axis is cut into bins of ``1/bins`` of the warm-up
  range; a sample landing in a bin never visited before is a raw anomaly (1, else 0). The raw
  stream goes through :class:`~slothlab.analytics.likelihood.AnomalyLikelihood`, so a bin first
  seen in a quiet series scores higher than one in a series that keeps wandering. Weighted by
  ``0.6`` so it stays below a clear range break.

The score is the larger of the two. One parameter set, nothing per series.

>>> det = NoveltyDetector()
>>> scores = det.score_batch([1.0, 2.0] * 200 + [9.0])
>>> float(scores[-1]) >= 0.7, float(scores[:-1].max())
(True, 0.0)
"""

from __future__ import annotations

import math

from slothlab.analytics.base import Detector
from slothlab.analytics.likelihood import AnomalyLikelihood

__all__ = ["NoveltyDetector"]


class NoveltyDetector(Detector):
    """Range and value-bin novelty with an anomaly-likelihood layer (see the module docs).

    Args:
        warmup: samples that set the bin width; scores are 0 until then.
        bins: bins across the warm-up range.
        tol: how far (fraction of the seen range) a value must leave that range to count.
        weight: the scale of the likelihood part (below the range part's floor of 0.7).
        long_window, short_window, learning: the likelihood layer's windows.
    """

    name = "novelty"

    def __init__(
        self,
        warmup: int = 150,
        bins: int = 30,
        tol: float = 0.05,
        weight: float = 0.6,
        long_window: int = 8640,
        short_window: int = 5,
        learning: int = 300,
    ) -> None:
        self.warmup = warmup
        self.bins = bins
        self.tol = tol
        self.weight = weight
        self._likelihood = AnomalyLikelihood(long_window, short_window, learning)
        self._buffer: list[float] = []
        self._counts: dict[int, int] = {}
        self._lo = math.inf
        self._hi = -math.inf
        self._origin = 0.0
        self._width = 0.0
        self._n = 0

    def update(self, value: float, ts: float | None = None) -> float:
        """Score one sample (``ts`` is accepted for the contract and not used)."""
        x = float(value)
        if not math.isfinite(x):
            return 0.0  # a gap or a NaN is not evidence; skip it without touching the state
        self._n += 1
        if self._n <= self.warmup:
            self._warm(x)
            self._likelihood.update(0.0)
            return 0.0
        lo, hi = self._lo, self._hi
        excess = max(x - hi, lo - x) / max(hi - lo, 1e-12)
        if excess > 0.0:
            self._lo, self._hi = min(lo, x), max(hi, x)
        spatial = 0.7 + 0.3 * min((excess - self.tol) / 0.5, 1.0) if excess > self.tol else 0.0
        key = math.floor((x - self._origin) / self._width)
        counts = self._counts
        seen = counts.get(key, 0)
        counts[key] = seen + 1
        # Inlined range and bin novelty: this is the per-sample hot path.
        likely = self._likelihood.update(0.0 if seen else 1.0)
        return max(spatial, self.weight * likely)

    def _warm(self, x: float) -> None:
        self._buffer.append(x)
        self._lo, self._hi = min(self._lo, x), max(self._hi, x)
        if self._n == self.warmup:
            span = self._hi - self._lo
            self._origin = self._lo
            self._width = span / self.bins if span > 0 else (abs(self._lo) or 1.0) / self.bins
            for v in self._buffer:
                self._visit(v)
            self._buffer = []

    def _visit(self, x: float) -> float:
        key = math.floor((x - self._origin) / self._width)
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        return 0.0 if seen else 1.0
