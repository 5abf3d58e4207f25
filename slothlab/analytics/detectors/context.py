"""The default univariate detector: range novelty and three likelihoods over context surprise.

Per sample, causally, with one parameter set for every series:

* **range novelty** — the value leaves the range of everything seen by more than ``tol`` of it
  (a new high or low). Scored 0.7–1.0.
* **bin novelty** — the value lands in a bin (``1/bins`` of the warm-up range) never visited.
* **context surprise** — values are quantised to ``levels`` steps of the warm-up range; the raw
  anomaly is ``1 - n(q | context) / (n(context) + 1)`` from counts of what followed the same
  context before, for the context "the two previous levels" and for "the previous level at this
  time of day" (3-hour buckets; without timestamps, just the previous level). A CAD-OSE-like
  memory of sequences, kept as plain counts.
* **daily profile** — the same surprise for the level given only the hour of the day (1-hour
  buckets): a value that is usual for the series but not at this time of day (a missing daily
  peak). Without timestamps it reads as "how rare is this level".

Each raw stream (1 for a new bin, the surprise in [0, 1]) goes through its own
:class:`~slothlab.analytics.likelihood.AnomalyLikelihood`, so surprise is judged against how
surprising that series usually is; their largest, times ``weight`` (0.6, below a range break),
competes with the range novelty. Finally a **repeat filter**: a score is reported only when it
beats every score of the previous ``refractory`` rows (else 0), because NAB-style scoring (and an
operator) wants one early alert per event, not a run of them.

``score_batch`` on a fresh detector is vectorised (numpy) and gives the same bits as
:meth:`ContextDetector.update` in a loop; a detector with state falls back to the loop.

>>> det = ContextDetector()
>>> scores = det.score_batch([1.0, 2.0] * 200 + [9.0])
>>> float(scores[-1]) >= 0.7, float(scores[:-1].max()) < 0.1
(True, True)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import TYPE_CHECKING

import numpy as np

from slothlab.analytics.base import Detector, _stamps
from slothlab.analytics.likelihood import AnomalyLikelihood, likelihood_batch, running_sums

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["ContextDetector"]

_DAY = 86400.0
_NO_LEVEL = -(2**62)  # the "previous level" before the first sample
_NO_TIME = -1
_CAP = 2.0**52  # bin and level numbers are clamped here: far-out values stay exact integers


def _clamp(position: float) -> float:
    return min(max(position, -_CAP), _CAP)


class ContextDetector(Detector):
    """Range novelty, bin novelty and context surprise through likelihoods (see the module docs).

    Args:
        warmup: samples that set the bin and level widths; scores are 0 until then.
        bins: value bins across the warm-up range (bin novelty).
        levels: quantisation levels across the warm-up range (context surprise).
        tol: how far (fraction of the seen range) a value must leave that range to count.
        weight: the scale of the likelihood part (below the range part's floor of 0.7).
        hours: the width of the time-of-day bucket of the sequence context, in hours.
        profile_hours: the width of the time-of-day bucket of the daily profile, in hours.
        refractory: rows a reported score must beat before another is reported.
        long_window, short_window, learning, min_std: the likelihood layers' parameters.
    """

    name = "context"

    def __init__(
        self,
        warmup: int = 150,
        bins: int = 30,
        levels: int = 8,
        tol: float = 0.05,
        weight: float = 0.6,
        hours: float = 3.0,
        profile_hours: float = 1.0,
        refractory: int = 100,
        long_window: int = 8640,
        short_window: int = 10,
        learning: int = 300,
        min_std: float = 0.03,
    ) -> None:
        self.warmup = max(int(warmup), 1)
        self.bins = bins
        self.levels = levels
        self.tol = tol
        self.weight = weight
        self.bucket = hours * 3600.0
        self.profile_bucket = profile_hours * 3600.0
        self.refractory = refractory
        self._lik_args = (long_window, short_window, learning, min_std)
        self._liks = [AnomalyLikelihood(*self._lik_args) for _ in range(4)]
        self._buffer: list[tuple[float, float | None]] = []
        self._lo = math.inf
        self._hi = -math.inf
        self._origin = 0.0
        self._bin_width = 1.0
        self._level_width = 1.0
        self._prev = (_NO_LEVEL, _NO_LEVEL)  # the last two levels, newest first
        self._counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(7)]
        self._recent: deque[float] = deque([0.0] * refractory, maxlen=refractory or None)
        self._pending: list[tuple[NDArray[np.int64], ...]] = []
        self._n = 0

    # --- streaming ---------------------------------------------------------------------------

    def update(self, value: float, ts: float | None = None) -> float:
        """Score one sample (``ts`` in epoch seconds sets the time-of-day context)."""
        x = float(value)
        if not math.isfinite(x):
            return 0.0  # a gap or a NaN is not evidence; skip it without touching the state
        self._n += 1
        if self._n <= self.warmup:
            self._warm(x, ts)
            for lik in self._liks:
                lik.update(0.0)
            return self._report(0.0)
        lo, hi = self._lo, self._hi
        excess = max(x - hi, lo - x) / max(hi - lo, 1e-12)
        if excess > 0.0:
            self._lo, self._hi = min(lo, x), max(hi, x)
        spatial = 0.7 + 0.3 * min((excess - self.tol) / 0.5, 1.0) if excess > self.tol else 0.0
        if self._pending:
            self._count_pending()
        raws = self._visit(x, ts)
        liks = self._liks
        likely = max(
            liks[0].update(raws[0]),
            liks[1].update(raws[1]),
            liks[2].update(raws[2]),
            liks[3].update(raws[3]),
        )
        return self._report(max(spatial, self.weight * likely))

    def _report(self, score: float) -> float:
        recent = self._recent
        out = score if not recent or score > max(recent) else 0.0
        if self.refractory:
            recent.append(score)
        return out

    def _visit(self, x: float, ts: float | None) -> tuple[float, float, float, float]:
        """Count this sample's bin and contexts; the three raw anomalies (before counting)."""
        bins, full, ctx, tfull, tctx, pfull, pctx = self._counts
        key = (math.floor(_clamp((x - self._origin) / self._bin_width)),)
        novel = 0.0 if bins[key] else 1.0
        bins[key] += 1
        q = math.floor(_clamp((x - self._origin) / self._level_width))
        q1, q2 = self._prev
        hour = _NO_TIME if ts is None else math.floor((ts % _DAY) / self.bucket)
        slot = _NO_TIME if ts is None else math.floor((ts % _DAY) / self.profile_bucket)
        surprise = 1.0 - full[(q, q1, q2)] / (ctx[(q1, q2)] + 1.0)
        timely = 1.0 - tfull[(q, q1, hour)] / (tctx[(q1, hour)] + 1.0)
        usual = 1.0 - pfull[(q, slot)] / (pctx[(slot,)] + 1.0)
        full[(q, q1, q2)] += 1
        ctx[(q1, q2)] += 1
        tfull[(q, q1, hour)] += 1
        tctx[(q1, hour)] += 1
        pfull[(q, slot)] += 1
        pctx[(slot,)] += 1
        self._prev = (q, q1)
        return novel, surprise, timely, usual

    def _count_pending(self) -> None:
        for counter, cols in zip(self._counts, self._pending, strict=True):
            counter.update(zip(*(c.tolist() for c in cols), strict=True))
        self._pending = []

    def _warm(self, x: float, ts: float | None) -> None:
        self._buffer.append((x, ts))
        self._lo, self._hi = min(self._lo, x), max(self._hi, x)
        if self._n == self.warmup:
            self._set_widths()
            for v, t in self._buffer:
                self._visit(v, t)
            self._buffer = []

    def _set_widths(self) -> None:
        span = self._hi - self._lo
        if span <= 0:
            span = abs(self._lo) or 1.0
        self._origin = self._lo
        self._bin_width = span / self.bins
        self._level_width = span / self.levels

    # --- batch -------------------------------------------------------------------------------

    def score_batch(
        self, values: ArrayLike, timestamps: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Scores for many samples in order: the same as :meth:`update` in a loop."""
        xs = np.asarray(values, dtype=np.float64).ravel()
        stamps = _stamps(timestamps, xs.size)
        finite = np.isfinite(xs)
        if self._n or int(finite.sum()) <= self.warmup:
            return super().score_batch(xs, timestamps)
        out = np.zeros(xs.size)
        kept = [s for s, ok in zip(stamps, finite.tolist(), strict=True) if ok]
        out[finite] = self._batch(xs[finite], kept)
        return out

    def _batch(self, x: NDArray[np.float64], stamps: list[float | None]) -> NDArray[np.float64]:
        n, warm = x.size, self.warmup
        self._n = n
        self._lo, self._hi = float(x[:warm].min()), float(x[:warm].max())
        self._set_widths()
        spatial = self._batch_spatial(x)
        bins = np.floor(np.clip((x - self._origin) / self._bin_width, -_CAP, _CAP)).astype(np.int64)
        q = np.floor(np.clip((x - self._origin) / self._level_width, -_CAP, _CAP)).astype(np.int64)
        q1 = np.r_[_NO_LEVEL, q[:-1]]
        q2 = np.r_[_NO_LEVEL, q1[:-1]]
        hour = self._hours(stamps, self.bucket)
        slot = self._hours(stamps, self.profile_bucket)
        keys = [(bins,), (q, q1, q2), (q1, q2), (q, q1, hour), (q1, hour), (q, slot), (slot,)]
        seen = [_seen_before(k) for k in keys]
        raws = [
            (seen[0] == 0).astype(np.float64),
            1.0 - seen[1] / (seen[2] + 1.0),
            1.0 - seen[3] / (seen[4] + 1.0),
            1.0 - seen[5] / (seen[6] + 1.0),
        ]
        likely = np.zeros(n)
        for lik, raw in zip(self._liks, raws, strict=True):
            raw[:warm] = 0.0
            likely = np.maximum(likely, likelihood_batch(raw, *self._lik_args))
            lik.restore(*running_sums(raw))
        self._pending = keys  # counted on the next update(): a batch alone never pays for it
        self._prev = (int(q[-1]), int(q[-2]))
        score = np.maximum(spatial, self.weight * likely)
        score[:warm] = 0.0
        return self._batch_report(score)

    def _hours(self, stamps: list[float | None], bucket: float) -> NDArray[np.int64]:
        if stamps and stamps[0] is not None:  # all stamps or none (see _stamps)
            ts = np.asarray(stamps, dtype=np.float64)
            return np.floor(np.mod(ts, _DAY) / bucket).astype(np.int64)
        return np.full(len(stamps), _NO_TIME, dtype=np.int64)

    def _batch_spatial(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        hi, lo = np.maximum.accumulate(x), np.minimum.accumulate(x)
        self._lo, self._hi = float(lo[-1]), float(hi[-1])
        prev_hi, prev_lo = hi[:-1], lo[:-1]
        excess = np.r_[0.0, np.maximum(x[1:] - prev_hi, prev_lo - x[1:])]
        excess[1:] /= np.maximum(prev_hi - prev_lo, 1e-12)
        far = excess > self.tol
        return np.where(far, 0.7 + 0.3 * np.minimum((excess - self.tol) / 0.5, 1.0), 0.0)

    def _batch_report(self, score: NDArray[np.float64]) -> NDArray[np.float64]:
        k = self.refractory
        if not k:
            return score
        from numpy.lib.stride_tricks import sliding_window_view

        padded = np.r_[np.zeros(k), score]
        before = sliding_window_view(padded[:-1], k).max(axis=1)
        self._recent.extend(padded[-k:].tolist())
        return np.where(score > before, score, 0.0)


def _seen_before(columns: tuple[NDArray[np.int64], ...]) -> NDArray[np.float64]:
    """For each row, how many earlier rows have the same key (the tuple of ``columns``)."""
    group = np.unique(columns[0], return_inverse=True)[1].ravel()
    for col in columns[1:]:
        codes = np.unique(col, return_inverse=True)[1].ravel()
        group = np.unique(group * (int(codes.max()) + 1) + codes, return_inverse=True)[1].ravel()
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1]
    sizes = np.diff(np.r_[starts, group.size])
    out: NDArray[np.float64] = np.empty(group.size)
    out[order] = np.arange(group.size) - np.repeat(starts, sizes)
    return out
