"""forecast_figure: the fan of a real forecast on the shared Azure series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.forecasting import Forecast, SeasonalNaive
from slothlab.errors import AnalyticsError
from slothlab.viz import forecast_figure


def _utc(value: object) -> pd.Timestamp:
    """A plotted x value as a UTC timestamp (plotly keeps UTC datetimes without the zone)."""
    stamp = pd.Timestamp(value)
    return stamp if stamp.tzinfo else stamp.tz_localize("UTC")


def test_fan_of_a_seasonal_naive_forecast(azure_cpu: pd.DataFrame) -> None:
    train, test = azure_cpu.iloc[:-288], azure_cpu.iloc[-288:]
    model = SeasonalNaive(season=288).fit(train["value"].to_numpy(), train["ts"].to_numpy())
    forecast = model.predict(288)
    fig = forecast_figure(train.iloc[-2016:], forecast, actual=test, y_title="CPU (cores, M)")
    names = [t.name for t in fig.data]
    assert names == ["history", "P10", "P10–P90", "forecast (seasonal_naive)", "actual"]
    lower, band = fig.data[1], fig.data[2]
    assert band.fill == "tonexty" and lower.showlegend is False
    assert np.all(np.asarray(band.y) >= np.asarray(lower.y))
    assert len(fig.data[3].x) == 288
    start = pd.Timestamp(forecast.timestamps[0], unit="s", tz="UTC")
    assert _utc(fig.data[3].x[0]) == start
    vlines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(vlines) == 1 and pd.Timestamp(vlines[0].x0) == start
    assert fig.layout.yaxis.title.text == "CPU (cores, M)"
    assert fig.layout.xaxis.title.text == "time (UTC)"


def test_series_input_and_quantile_names() -> None:
    history = pd.Series(np.arange(5.0), index=pd.date_range("2024-01-01", periods=5, freq="h"))
    stamps = (
        pd.date_range("2024-01-01 05:00", periods=3, freq="h") - pd.Timestamp(0)
    ).total_seconds()
    f = Forecast(stamps.to_numpy(), np.ones(3), np.full(3, 2.0), np.zeros(3), 0.95, "m")
    fig = forecast_figure(history, f)
    assert [t.name for t in fig.data] == ["history", "P5", "P5–P95", "forecast (m)"]
    with pytest.raises(AnalyticsError, match="needs the columns"):
        forecast_figure(pd.DataFrame({"time": [1]}), f)


def test_the_frame_forecast_returns_is_drawn_too() -> None:
    from slothlab.analytics import forecast

    history = pd.Series(
        np.sin(np.arange(200) / 9), index=pd.date_range("2024-01-01", periods=200, freq="h")
    )
    frame = forecast(history, horizon=6)
    fig = forecast_figure(history, frame)
    assert fig.data[-1].name == f"forecast ({frame.attrs['model']})"
    assert list(fig.data[-1].y) == pytest.approx(frame["mean"].tolist())
