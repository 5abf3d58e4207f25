"""Naive and seasonal-naive forecasters: the baselines every model must beat.

Their bounds come from the series' own history: the upper bound at step ``h`` adds the
``quantile`` of the errors the same rule made ``h`` steps ahead in the past.

>>> import numpy as np
>>> y = np.tile([1.0, 2.0, 3.0, 4.0], 10)
>>> SeasonalNaive(season=4).fit(y, np.arange(40.0)).predict(6).mean.tolist()
[1.0, 2.0, 3.0, 4.0, 1.0, 2.0]
>>> Naive().fit(y, np.arange(40.0)).predict(2).mean.tolist()
[4.0, 4.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slothlab.analytics.forecasting._series import check_series, future_timestamps
from slothlab.analytics.forecasting.base import Forecast, Forecaster

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Naive", "SeasonalNaive"]


class Naive(Forecaster):
    """Every future step equals the last value."""

    name = "naive"

    def fit(self, values: NDArray[np.float64], timestamps: NDArray[np.float64]) -> Naive:
        self._y, self._ts = check_series(values, timestamps)
        return self

    def _lag(self, h: int) -> int:
        return h

    def predict(self, horizon: int) -> Forecast:
        import numpy as np

        y = self._y
        lags = [self._lag(h) for h in range(1, horizon + 1)]
        mean = np.array([y[len(y) - lag + h - 1] for h, lag in enumerate(lags, 1)])
        upper, lower = np.empty(horizon), np.empty(horizon)
        for i, lag in enumerate(lags):
            errors = y[lag:] - y[:-lag] if lag < len(y) else np.zeros(1)
            # a trend biases the errors; the bounds still bracket the point forecast
            upper[i] = mean[i] + max(np.quantile(errors, self.quantile), 0.0)
            lower[i] = mean[i] + min(np.quantile(errors, 1 - self.quantile), 0.0)
        return Forecast(
            future_timestamps(self._ts, horizon), mean, upper, lower, self.quantile, self.name
        )


class SeasonalNaive(Naive):
    """Every future step equals the value one season earlier (288 steps: a day at 5 minutes).

    Args:
        season: the season in steps.
        quantile: the level of the upper bound.
    """

    name = "seasonal_naive"

    def __init__(self, season: int = 288, quantile: float = 0.9) -> None:
        super().__init__(quantile)
        if season < 1:
            raise ValueError(f"season must be at least 1 step, not {season}")
        self.season = season

    def fit(self, values: NDArray[np.float64], timestamps: NDArray[np.float64]) -> SeasonalNaive:
        super().fit(values, timestamps)
        if len(self._y) < self.season:
            raise ValueError(
                f"seasonal naive with a season of {self.season} steps needs at least that many "
                f"points, got {len(self._y)}"
            )
        return self

    def _lag(self, h: int) -> int:
        return self.season * -(-h // self.season)
