"""The detector contracts: one univariate (per metric) and one multivariate (per host).

A detector is causal and stateful: :meth:`Detector.update` takes one sample and returns its
score in ``[0, 1]`` having seen only the past; :meth:`Detector.score_batch` is the same loop over
an array (results equal to calling ``update`` one by one); :meth:`Detector.fit` warms the state
up on history without returning scores. Make a fresh detector per series.

>>> class Constant(Detector):
...     name = "constant"
...     def update(self, value: float, ts: float | None = None) -> float:
...         return 0.0
>>> Constant().score_batch([1.0, 2.0]).tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["Detector", "HostDetector", "seconds"]


def seconds(timestamps: ArrayLike) -> NDArray[np.float64]:
    """Epoch seconds from numbers, datetime64 values or (tz-aware) Timestamps.

    A pandas DatetimeIndex read as plain floats would be nanoseconds (or microseconds).

    >>> seconds(np.array(["1970-01-02"], dtype="datetime64[us]")).tolist()
    [86400.0]
    >>> seconds([1.5, 2]).tolist()
    [1.5, 2.0]
    """
    arr = np.asarray(timestamps)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").astype(np.int64) / 1e9
    if arr.dtype == object and arr.size and hasattr(arr.flat[0], "timestamp"):
        return np.asarray([t.timestamp() for t in arr.ravel()], dtype=np.float64)
    return np.asarray(arr, dtype=np.float64)


def _stamps(timestamps: ArrayLike | None, n: int) -> list[float | None]:
    if timestamps is None:
        return [None] * n
    out: list[float | None] = [*seconds(timestamps).ravel().tolist()]
    if len(out) != n:
        from slothlab.errors import AnalyticsError

        raise AnalyticsError(f"{len(out)} timestamps for {n} values; pass one per value")
    return out


class Detector(abc.ABC):
    """A streaming anomaly detector over one metric (univariate)."""

    name: ClassVar[str] = "detector"

    @abc.abstractmethod
    def update(self, value: float, ts: float | None = None) -> float:
        """Take one sample (``ts`` in epoch seconds, optional) and return its score in [0, 1]."""

    def score_batch(
        self, values: ArrayLike, timestamps: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Scores for many samples in order: the same as calling :meth:`update` in a loop."""
        xs = np.asarray(values, dtype=np.float64).ravel().tolist()
        update = self.update
        out = [update(x, t) for x, t in zip(xs, _stamps(timestamps, len(xs)), strict=True)]
        return np.asarray(out, dtype=np.float64)

    def fit(self, values: ArrayLike, timestamps: ArrayLike | None = None) -> Detector:
        """Warm the detector up on history (its scores are dropped); returns ``self``."""
        self.score_batch(values, timestamps)
        return self


class HostDetector(abc.ABC):
    """A streaming anomaly detector over several metrics of one host (multivariate)."""

    name: ClassVar[str] = "host-detector"

    @abc.abstractmethod
    def update(self, values: Sequence[float], ts: float | None = None) -> float:
        """Take one row (one value per metric) and return its score in [0, 1]."""

    def score_batch(
        self, rows: ArrayLike, timestamps: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Scores for a 2-D array of rows in order: the same as :meth:`update` in a loop."""
        matrix = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        stamps = _stamps(timestamps, matrix.shape[0])
        return np.asarray([self.update(r, t) for r, t in zip(matrix, stamps, strict=True)])

    def fit(self, rows: ArrayLike, timestamps: ArrayLike | None = None) -> HostDetector:
        """Warm the detector up on history (its scores are dropped); returns ``self``."""
        self.score_batch(rows, timestamps)
        return self
