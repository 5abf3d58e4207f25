"""Shared look and input checks of the figures."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from slothlab.errors import AnalyticsError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["COLORS", "TEMPLATE", "as_time", "finish", "require"]

TEMPLATE = "plotly_white"
COLORS = {
    "value": "#1f77b4",
    "score": "#7f7f7f",
    "flag": "#d62728",
    "forecast": "#ff7f0e",
    "band": "rgba(255, 127, 14, 0.2)",
    "threshold": "#d62728",
    "agents": "#2ca02c",
    "capacity": "rgba(44, 160, 44, 0.35)",
    "savings": "#17becf",
}


def require(frame: Any, columns: Iterable[str], figure: str) -> pd.DataFrame:
    """``frame`` if it is a DataFrame with ``columns``, else an error naming what is missing."""
    import pandas as pd

    wanted = list(columns)
    if not isinstance(frame, pd.DataFrame):
        raise AnalyticsError(
            f"{figure} takes a DataFrame with columns {wanted}, not {type(frame).__name__}"
        )
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise AnalyticsError(
            f"{figure} needs the columns {missing}; the DataFrame has {list(frame.columns)}"
        )
    return frame


def as_time(values: Any) -> pd.Series:
    """Timestamps as UTC datetimes: epoch seconds are converted, datetimes kept."""
    import pandas as pd

    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_datetime(series, unit="s", utc=True)
    return pd.to_datetime(series, utc=True)


def finish(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    """Apply the common layout: template, title, axis titles, legend on top."""
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        xaxis_title=x_title,
        yaxis_title=y_title,
    )
    return fig
