"""A forecast fan chart: the history, the point forecast and its bounds.

>>> import numpy as np
>>> import pandas as pd
>>> from slothlab.analytics.forecasting import Forecast
>>> history = pd.DataFrame({"ts": np.arange(0.0, 600.0, 60.0), "value": np.arange(10.0)})
>>> ahead = np.arange(600.0, 900.0, 60.0)
>>> f = Forecast(ahead, np.full(5, 9.0), np.full(5, 11.0), np.full(5, 7.0), 0.9, "naive")
>>> [t.name for t in forecast_figure(history, f).data]
['history', 'P10', 'P10–P90', 'forecast (naive)']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.viz._style import COLORS, as_time, finish, require

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from slothlab.analytics.forecasting import Forecast

__all__ = ["forecast_figure"]


def forecast_figure(
    history: pd.DataFrame | pd.Series,
    forecast: Forecast | pd.DataFrame,
    *,
    title: str = "Forecast",
    y_title: str = "value",
    actual: pd.DataFrame | pd.Series | None = None,
) -> go.Figure:
    """The history, then the forecast's mean with the band between its bounds.

    Args:
        history: a DataFrame with ts (datetimes or epoch seconds) and value, or a Series
            indexed by time.
        forecast: a :class:`~slothlab.analytics.forecasting.Forecast` (epoch-second steps), or
            the DataFrame :func:`~slothlab.analytics.forecast` returns.
        title, y_title: titles of the figure and of the value axis.
        actual: what really happened over the forecast (same shape as ``history``), drawn
            for comparison.

    Returns:
        Traces ``history``, the lower bound (``P10`` for a 0.9 quantile, no legend), the band
        ``P10–P90`` filled to it, ``forecast (<model>)`` and, given, ``actual``; a vertical
        line where the forecast starts.
    """
    import plotly.graph_objects as go

    past = _frame(history, "forecast_figure")
    from slothlab.analytics.forecasting import Forecast

    if not isinstance(forecast, Forecast):
        forecast = Forecast.from_frame(forecast)
    ts = as_time(forecast.timestamps)
    lo, hi = round(100 * (1 - forecast.quantile)), round(100 * forecast.quantile)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=past["ts"], y=past["value"], name="history", line={"color": COLORS["value"]})
    )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=forecast.lower,
            name=f"P{lo}",
            showlegend=False,
            line={"width": 0},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=forecast.upper,
            name=f"P{lo}–P{hi}",
            fill="tonexty",
            fillcolor=COLORS["band"],
            line={"width": 0},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=forecast.mean,
            name=f"forecast ({forecast.model})",
            line={"color": COLORS["forecast"], "dash": "dash"},
        )
    )
    if actual is not None:
        real = _frame(actual, "forecast_figure (actual)")
        fig.add_trace(
            go.Scatter(
                x=real["ts"], y=real["value"], name="actual", line={"color": "black", "width": 1}
            )
        )
    if len(ts):
        fig.add_vline(x=ts.iloc[0], line={"dash": "dot", "color": "grey"}, name="forecast start")
    return finish(fig, title, "time (UTC)", y_title)


def _frame(data: Any, figure: str) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.Series):
        data = pd.DataFrame({"ts": data.index, "value": data.to_numpy()})
    frame = require(data, ["ts", "value"], figure)
    return pd.DataFrame({"ts": as_time(frame["ts"]), "value": frame["value"].to_numpy()})
