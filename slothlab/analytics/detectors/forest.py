"""Per-host multivariate detection: an IsolationForest over several metrics, refitted as it goes.

The forest is fitted on the first ``window`` rows (scores are 0 until then), then scores every
row with the model of the moment and is refitted on the last ``window`` rows every ``refit``
rows. Its raw score (``-score_samples``, about 0.4 for ordinary rows and up to 1 for isolated
ones) goes through the anomaly-likelihood layer, so the output is calibrated like the
univariate detectors'. Fitting uses a fixed seed: the same rows give the same scores.

>>> import numpy as np
>>> rows = np.random.default_rng(0).normal(size=(300, 3))
>>> det = IsolationForestDetector(window=100, refit=100, learning=50)
>>> scores = det.score_batch(rows)
>>> scores.shape, bool(((scores >= 0) & (scores <= 1)).all())
((300,), True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from slothlab.analytics.base import HostDetector
from slothlab.analytics.likelihood import AnomalyLikelihood

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["IsolationForestDetector"]


class IsolationForestDetector(HostDetector):
    """IsolationForest over rows of several metrics, with periodic refits (see the module docs).

    Args:
        window: rows the forest is fitted on.
        refit: rows between refits.
        trees: trees in the forest.
        seed: the random seed of every fit.
        long_window, short_window, learning: the likelihood layer's windows.
    """

    name = "isolation_forest"

    def __init__(
        self,
        window: int = 1000,
        refit: int = 500,
        trees: int = 50,
        seed: int = 0,
        long_window: int = 8640,
        short_window: int = 5,
        learning: int = 300,
    ) -> None:
        self.window = window
        self.refit = refit
        self.trees = trees
        self.seed = seed
        self._likelihood = AnomalyLikelihood(long_window, short_window, learning)
        self._rows: deque[NDArray[np.float64]] = deque(maxlen=window)
        self._model: Any = None
        self._since_fit = 0

    def update(self, values: Sequence[float], ts: float | None = None) -> float:
        """Score one row (one value per metric)."""
        row = np.asarray(values, dtype=np.float64).ravel()
        return float(self._step(row[None, :])[0])

    def score_batch(
        self, rows: ArrayLike, timestamps: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Scores for rows in order; rows between two refits are scored in one call."""
        matrix = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        out = np.zeros(matrix.shape[0])
        i = 0
        while i < matrix.shape[0]:
            step = self._rows_until_fit() if self._model is not None else 1
            out[i : i + step] = self._step(matrix[i : i + step])
            i += step
        return out

    def _rows_until_fit(self) -> int:
        return max(self.refit - self._since_fit, 1)

    def _step(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """Score a block that needs no refit inside it, then keep its rows and refit if due."""
        raw = np.zeros(block.shape[0])
        if self._model is not None:
            raw = np.clip(-self._model.score_samples(block), 0.0, 1.0)
        scores = np.array([self._likelihood.update(float(r)) for r in raw])
        if self._model is None:
            scores[:] = 0.0
        self._rows.extend(block)
        self._since_fit += block.shape[0]
        due = self._model is None and len(self._rows) >= self.window
        if due or (self._model is not None and self._since_fit >= self.refit):
            self._fit()
        return scores

    def _fit(self) -> None:
        from sklearn.ensemble import IsolationForest

        model = IsolationForest(n_estimators=self.trees, random_state=self.seed)
        self._model = model.fit(np.asarray(self._rows))
        self._since_fit = 0
