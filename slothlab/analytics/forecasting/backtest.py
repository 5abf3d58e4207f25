"""Rolling-origin backtests: how a forecaster would have done on the end of a series.

The protocol of notes/benchmarks.md: hold out the last ``test_points`` values, forecast
``horizon`` steps from an origin every ``every`` steps inside them, refitting on everything before
each origin. Errors are scaled by the in-sample seasonal-naive error (MASE), so 1.0 means "as good
as repeating yesterday" on the training part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slothlab.analytics.forecasting._series import check_series
from slothlab.analytics.forecasting.base import Forecast, Forecaster

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Backtest", "rolling_origin"]


@dataclass
class Backtest:
    """The forecasts and actuals of one rolling-origin backtest, and the scores they give."""

    model: str
    horizon: int
    origins: list[int] = field(default_factory=list)
    forecasts: list[Forecast] = field(default_factory=list)
    actuals: list[NDArray[np.float64]] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)

    def _stack(self, attr: str) -> NDArray[np.float64]:
        import numpy as np

        return np.concatenate([getattr(f, attr) for f in self.forecasts])

    def scores(self) -> dict[str, Any]:
        """MASE, sMAPE, MAE, and the coverage of the upper bound, over every origin."""
        import numpy as np

        actual = np.concatenate(self.actuals)
        mean, upper = self._stack("mean"), self._stack("upper")
        abs_err = np.abs(actual - mean)
        scale = np.concatenate(
            [np.full(len(a), s) for a, s in zip(self.actuals, self.scales, strict=True)]
        )
        denom = np.abs(actual) + np.abs(mean)
        smape = np.where(denom > 0, 2 * abs_err / np.where(denom > 0, denom, 1), 0.0)
        return {
            "model": self.model,
            "horizon": self.horizon,
            "origins": len(self.origins),
            "mase": float(np.mean(abs_err / scale)),
            "smape_pct": float(100 * np.mean(smape)),
            "mae": float(np.mean(abs_err)),
            "upper_coverage": float(np.mean(actual <= upper)),
        }


def rolling_origin(
    values: Any,
    timestamps: Any,
    make: Callable[[], Forecaster],
    *,
    horizon: int,
    test_points: int,
    every: int,
    season: int = 288,
) -> Backtest:
    """Backtest the forecasters ``make()`` builds over the last ``test_points`` values.

    Args:
        values, timestamps: the whole series (evenly spaced).
        make: builds a fresh, unfitted forecaster for each origin.
        horizon: steps forecast from each origin.
        test_points: how many values at the end are held out.
        every: steps between two origins.
        season: the season of the naive forecast that scales the errors (MASE).
    """
    import numpy as np

    y, ts = check_series(values, timestamps)
    n = len(y)
    if test_points + season + 1 > n:
        raise ValueError(
            f"the series has {n} points; a backtest over the last {test_points} with a season of "
            f"{season} needs more than {test_points + season}"
        )
    result = Backtest(model="", horizon=horizon)
    for origin in range(n - test_points, n - horizon + 1, every):
        train_y, train_ts = y[:origin], ts[:origin]
        model = make().fit(train_y, train_ts)
        forecast = model.predict(horizon)
        result.model = forecast.model
        result.origins.append(origin)
        result.forecasts.append(forecast)
        result.actuals.append(y[origin : origin + horizon])
        scale = float(np.mean(np.abs(train_y[season:] - train_y[:-season])))
        result.scales.append(scale or 1.0)
    return result
