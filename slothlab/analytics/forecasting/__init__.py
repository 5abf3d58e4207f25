"""Forecasting: baselines, a gradient-boosted model with quantile bounds, backtests, auto choice."""

from __future__ import annotations

from slothlab.analytics.forecasting.auto import (
    MODELS,
    choose_forecaster,
    forecast,
    make_forecaster,
)
from slothlab.analytics.forecasting.backtest import Backtest, rolling_origin
from slothlab.analytics.forecasting.base import Forecast, Forecaster
from slothlab.analytics.forecasting.baselines import Naive, SeasonalNaive
from slothlab.analytics.forecasting.gbm import GradientBoostingForecaster

__all__ = [
    "MODELS",
    "Backtest",
    "Forecast",
    "Forecaster",
    "GradientBoostingForecaster",
    "Naive",
    "SeasonalNaive",
    "choose_forecaster",
    "forecast",
    "make_forecaster",
    "rolling_origin",
]
