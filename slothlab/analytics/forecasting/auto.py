"""Choose a forecaster per series by backtest, and forecast a pandas series in one call.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=600, freq="5min")
>>> series = pd.Series(np.tile(np.arange(12.0), 50), index=idx)
>>> frame = forecast(series, horizon=3, model="seasonal_naive", season=12)
>>> frame["mean"].tolist()
[0.0, 1.0, 2.0]
>>> frame.attrs["model"]
'seasonal_naive'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slothlab.analytics.forecasting._series import check_series, step_of
from slothlab.analytics.forecasting.backtest import rolling_origin
from slothlab.analytics.forecasting.base import Forecaster
from slothlab.analytics.forecasting.baselines import Naive, SeasonalNaive
from slothlab.analytics.forecasting.gbm import DAY_S, WEEK_S, GradientBoostingForecaster

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["MODELS", "choose_forecaster", "forecast", "make_forecaster"]

MODELS = ("auto", "naive", "seasonal_naive", "weekly_naive", "gbm")
"""The names :func:`forecast` takes as ``model``."""


def make_forecaster(
    name: str, *, horizon: int, step_s: float, quantile: float = 0.9, season: int | None = None
) -> Forecaster:
    """A fresh forecaster by name (see :data:`MODELS`; ``auto`` is :func:`choose_forecaster`).

    ``season`` (in steps) overrides the daily season of ``seasonal_naive``.
    """
    day = max(1, round(DAY_S / step_s))
    if name == "naive":
        return Naive(quantile)
    if name == "seasonal_naive":
        return SeasonalNaive(season or day, quantile)
    if name == "weekly_naive":
        return SeasonalNaive(max(1, round(WEEK_S / step_s)), quantile)
    if name == "gbm":
        return GradientBoostingForecaster(horizon=horizon, quantile=quantile)
    raise ValueError(f"unknown forecast model {name!r}; choose one of {', '.join(MODELS)}")


def _candidates(n: int, step_s: float) -> list[str]:
    day = DAY_S / step_s
    names = ["naive"]
    if n >= 3 * day:
        names += ["seasonal_naive", "gbm"]
    if n >= 3 * 7 * day:
        names.append("weekly_naive")
    return names


def choose_forecaster(
    values: Any,
    timestamps: Any,
    horizon: int,
    *,
    quantile: float = 0.9,
    folds: int = 3,
    candidates: list[str] | None = None,
) -> tuple[Forecaster, dict[str, float]]:
    """Backtest the candidates on the end of the series; return the best one, fitted, and scores.

    Each candidate forecasts ``horizon`` steps from ``folds`` origins, half a day (or one
    horizon, if longer) apart, at the end of the series; the lowest mean absolute error wins.
    The winner is then fitted on the whole series.
    """
    y, ts = check_series(values, timestamps)
    step = step_of(ts)
    names = candidates or _candidates(len(y), step)
    every = max(horizon, round(DAY_S / 2 / step))
    test_points = (folds - 1) * every + horizon
    scores: dict[str, float] = {}
    for name in names:

        def make(name: str = name) -> Forecaster:
            return make_forecaster(name, horizon=horizon, step_s=step, quantile=quantile)

        season = max(1, round(DAY_S / step))
        if len(y) <= test_points + season:
            scores[name] = float("inf")
            continue
        try:
            result = rolling_origin(
                y, ts, make, horizon=horizon, test_points=test_points, every=every, season=season
            )
        except ValueError:
            scores[name] = float("inf")
            continue
        scores[name] = result.scores()["mae"]
    best = min(scores, key=lambda k: scores[k]) if scores else "naive"
    if scores.get(best, float("inf")) == float("inf"):
        best = "naive"
    chosen = make_forecaster(best, horizon=horizon, step_s=step, quantile=quantile)
    return chosen.fit(y, ts), scores


def _as_arrays(series: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], Callable[..., Any]]:
    import numpy as np
    import pandas as pd

    if isinstance(series, pd.DataFrame):
        if not {"ts", "value"} <= set(series.columns):
            raise ValueError("a DataFrame to forecast needs 'ts' and 'value' columns")
        index, values = pd.DatetimeIndex(series["ts"]), series["value"]
    elif isinstance(series, pd.Series):
        index, values = pd.DatetimeIndex(series.index), series
    else:
        raise ValueError("forecast() takes a pandas Series indexed by time or a ts/value DataFrame")
    tz = index.tz
    utc = index.tz_convert("UTC").tz_localize(None) if tz else index
    stamps = utc.as_unit("ns").asi8 / 1e9  # whatever the unit (the history gives microseconds)

    def back(seconds: NDArray[np.float64]) -> Any:
        out = pd.to_datetime(np.round(seconds * 1e9).astype("int64"))
        return out.tz_localize("UTC").tz_convert(tz) if tz else out

    return values.to_numpy(dtype=float), np.asarray(stamps, dtype=float), back


def forecast(
    series: pd.Series | pd.DataFrame,
    horizon: int,
    *,
    model: str = "auto",
    quantile: float = 0.9,
    season: int | None = None,
) -> pd.DataFrame:
    """Forecast the next ``horizon`` steps of a series.

    Args:
        series: a Series indexed by time, or a DataFrame with ``ts`` and ``value`` columns, at a
            regular step.
        horizon: how many steps to forecast.
        model: one of :data:`MODELS`; ``auto`` picks by backtest on the series' own end.
        quantile: the level of the upper bound (the lower one is ``1 - quantile``).
        season: the season in steps for ``seasonal_naive`` (default: a day).

    Returns:
        A DataFrame with ``ts``, ``mean``, ``lower`` and ``upper``; ``frame.attrs["model"]``
        names the model and ``frame.attrs["scores"]`` holds the backtest of ``auto``.
    """
    import pandas as pd

    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 step, not {horizon}")
    values, stamps, back = _as_arrays(series)
    y, ts = check_series(values, stamps)
    scores: dict[str, float] = {}
    if model == "auto":
        fitted, scores = choose_forecaster(y, ts, horizon, quantile=quantile)
    else:
        step = step_of(ts)
        fitted = make_forecaster(model, horizon=horizon, step_s=step, quantile=quantile,
                                 season=season).fit(y, ts)  # fmt: skip
    result = fitted.predict(horizon)
    frame = pd.DataFrame(
        {"ts": back(result.timestamps), "mean": result.mean, "lower": result.lower,
         "upper": result.upper}
    )  # fmt: skip
    frame.attrs["model"] = result.model
    frame.attrs["quantile"] = quantile
    frame.attrs["scores"] = scores
    return frame
