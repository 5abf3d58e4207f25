"""A gradient-boosted forecaster on lag and calendar features, with a quantile upper bound.

One scikit-learn ``HistGradientBoostingRegressor`` learns every horizon at once ("direct"
forecasting with the horizon as a feature): for an origin ``t`` and a step ``h`` it predicts the
change ``y[t+h] - y[t]`` from the recent level, the values one day and one week before the target
time, the recent trend and the target's time of day and day of week. Everything is scaled by the
series' typical size, so one parameter set serves series of any unit. Lags a short series does
not have are missing values, which the trees handle natively.

The bounds are split-conformal: a first model, fitted on all but the last days, forecasts those
days; the quantiles of its errors, per band of horizons, become the bounds around the final model
(refitted on everything). Quantile-loss models fitted in-sample covered only ~77 % of actuals at
P90 on the Azure trace; errors measured out of sample cover what they promise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.analytics.forecasting._series import check_series, future_timestamps, step_of
from slothlab.analytics.forecasting.base import Forecast, Forecaster

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["GradientBoostingForecaster"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
MIN_TRAIN_ROWS = 500
MIN_CALIB_ROWS = 100
MIN_BAND_ROWS = 30
_BAND_EDGES = (1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025)


class _ErrorBands:
    """Error quantiles per band of horizons (1, 2, 3-4, 5-8, ...)."""

    def __init__(self, low: NDArray[np.float64], high: NDArray[np.float64]) -> None:
        self.low, self.high = low, high

    def at(self, steps: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        import numpy as np

        band = np.searchsorted(_BAND_EDGES, steps, side="right") - 1
        return self.low[band], self.high[band]


def _error_bands(errors: NDArray[np.float64], steps: NDArray[np.int64], q: float) -> _ErrorBands:
    """Conformal quantiles of ``errors`` per band; a thin band borrows from its neighbours."""
    import numpy as np

    band = np.searchsorted(_BAND_EDGES, steps, side="right") - 1
    count = len(_BAND_EDGES)
    low, high = np.zeros(count), np.zeros(count)
    for b in range(count):
        width = 0
        chosen = errors[band == b]
        while len(chosen) < MIN_BAND_ROWS and width < count:
            width += 1
            chosen = errors[np.abs(band - b) <= width]
        n = len(chosen)
        level = min(1.0, np.ceil((n + 1) * q) / n)  # the finite-sample conformal level
        high[b] = np.quantile(chosen, level)
        low[b] = np.quantile(chosen, 1 - level)
    return _ErrorBands(low, high)


class GradientBoostingForecaster(Forecaster):
    """Direct multi-horizon forecaster on scikit-learn's histogram gradient boosting.

    Args:
        horizon: the longest horizon (in steps) the model is trained for.
        quantile: the level of the upper bound.
        max_rows: training rows at most (origins are thinned to fit), which bounds fit time.
        random_state: seed of the boosting (results are reproducible).
    """

    name = "gbm"

    def __init__(
        self,
        horizon: int = 288,
        quantile: float = 0.9,
        max_rows: int = 20_000,
        random_state: int = 0,
    ) -> None:
        super().__init__(quantile)
        self.horizon = horizon
        self.max_rows = max_rows
        self.random_state = random_state

    def _model(self, loss: str, quantile: float | None = None) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        kwargs: dict[str, Any] = {"quantile": quantile} if quantile is not None else {}
        return HistGradientBoostingRegressor(
            loss=loss,
            learning_rate=0.1,
            max_iter=150,
            max_leaf_nodes=31,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.random_state,
            **kwargs,
        )

    def fit(
        self, values: NDArray[np.float64], timestamps: NDArray[np.float64]
    ) -> GradientBoostingForecaster:
        import numpy as np

        y, ts = check_series(values, timestamps)
        self._y, self._ts, self._step = y, ts, step_of(ts)
        self._scale = float(np.mean(np.abs(y))) or 1.0
        origins, steps = self._training_pairs(len(y))
        self._keep = None
        x = self._features(origins, steps)
        # a lag the series is too short for is missing everywhere: drop it (sklearn cannot bin it)
        self._keep = ~np.isnan(x).all(axis=0)
        x = x[:, self._keep]
        target = (y[origins + steps] - y[origins]) / self._scale
        span = self._calibration_span(len(y))
        proper = origins + steps < len(y) - span
        calib = origins >= len(y) - span
        if proper.sum() >= MIN_TRAIN_ROWS and calib.sum() >= MIN_CALIB_ROWS:
            first = self._model("absolute_error").fit(x[proper], target[proper])
            errors = target[calib] - first.predict(x[calib])
            self._bands = _error_bands(errors, steps[calib], self.quantile)
        else:  # too short to hold days out: in-sample errors (bounds will be too narrow)
            self._mean = self._model("absolute_error").fit(x, target)
            self._bands = _error_bands(target - self._mean.predict(x), steps, self.quantile)
        self._mean = self._model("absolute_error").fit(x, target)
        return self

    def _calibration_span(self, n: int) -> int:
        return min(max(2 * self.horizon, self._lag_steps(2 * DAY_S)), n // 4)

    def _training_pairs(self, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        import numpy as np

        horizon = min(self.horizon, max(1, n // 4))
        # Every step of the first hour, then a thinner grid: short horizons matter most.
        steps = np.unique(
            np.concatenate(
                [np.arange(1, min(horizon, 12) + 1), np.linspace(1, horizon, 32).round()]
            )
        ).astype(np.int64)
        first = min(self._lag_steps(WEEK_S), n // 2)
        per_step = max(1, self.max_rows // len(steps))
        origin_pairs = []
        for h in steps:
            candidates = np.arange(first, n - h)
            stride = max(1, len(candidates) // per_step)
            chosen = candidates[::-1][::stride]
            origin_pairs.append(np.column_stack([chosen, np.full(len(chosen), h)]))
        pairs = np.concatenate(origin_pairs)
        return pairs[:, 0], pairs[:, 1]

    def _lag_steps(self, seconds: float) -> int:
        return max(1, round(seconds / self._step))

    def _features(self, origins: NDArray[np.int64], steps: NDArray[np.int64]) -> Any:
        import numpy as np

        y, s = self._y, self._scale
        day, week = self._lag_steps(DAY_S), self._lag_steps(WEEK_S)

        def at(index: NDArray[np.int64]) -> NDArray[np.float64]:
            out = np.full(len(index), np.nan)
            ok = (index >= 0) & (index < len(y))
            out[ok] = y[index[ok]]
            return out

        def target_lag(lag: int) -> NDArray[np.int64]:
            # the value one season before the target time, never later than the origin
            return origins + steps - lag * -(-steps // lag)

        last = y[origins]
        cumsum = np.concatenate([[0.0], np.cumsum(y)])
        recent = (cumsum[origins + 1] - cumsum[np.maximum(origins - 11, 0)]) / np.minimum(
            origins + 1, 12
        )
        target_ts = self._ts[0] + (origins + steps) * self._step
        x = np.column_stack(
            [
                steps,
                last / s,
                (recent - last) / s,
                (at(target_lag(day)) - last) / s,
                (at(target_lag(week)) - last) / s,
                (last - at(origins - day)) / s,
                (last - at(origins - week)) / s,
                (at(origins + steps - week) - at(origins - week)) / s,
                (target_ts % DAY_S) / DAY_S,
                (target_ts // DAY_S) % 7,
            ]
        )
        return x if self._keep is None else x[:, self._keep]

    def predict(self, horizon: int) -> Forecast:
        import numpy as np

        if horizon > self.horizon:
            raise ValueError(
                f"this model was trained for horizons up to {self.horizon} steps; "
                f"fit GradientBoostingForecaster(horizon={horizon}) for {horizon}"
            )
        n = len(self._y)
        steps = np.arange(1, horizon + 1, dtype=np.int64)
        origins = np.full(horizon, n - 1, dtype=np.int64)
        x = self._features(origins, steps)
        last, s = self._y[-1], self._scale
        mean = last + s * self._mean.predict(x)
        low, high = self._bands.at(steps)
        upper = mean + s * np.maximum(high, 0.0)
        lower = mean + s * np.minimum(low, 0.0)
        return Forecast(
            future_timestamps(self._ts, horizon), mean, upper, lower, self.quantile, self.name
        )
