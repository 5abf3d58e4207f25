"""Capacity figures: days to threshold per host, and one series' trend to its threshold.

>>> import pandas as pd
>>> report = pd.DataFrame({"host": ["db-1", "web-1"], "resource": ["disk", "cpu"],
...                        "labels": ["mount=/", ""], "status": ["crossing", "not within horizon"],
...                        "earliest_days": [3.0, 40.0], "likely_days": [5.0, None],
...                        "latest_days": [9.0, None]})
>>> fig = capacity_figure(report, horizon_days=30)
>>> [t.name for t in fig.data], list(fig.data[0].y)
(['likely', 'earliest only'], ['db-1 · disk · mount=/'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.viz._style import COLORS, as_time, finish, require

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from slothlab.analytics.capacity import Crossing

__all__ = ["capacity_figure", "threshold_figure"]

_DAY = 86400.0


def capacity_figure(
    report: pd.DataFrame, *, horizon_days: float | None = None, title: str = "Time to threshold"
) -> go.Figure:
    """Days until each series reaches its threshold: a bar to the likely crossing with error
    bars from the earliest to the latest one, soonest on top.

    Args:
        report: a :func:`~slothlab.analytics.capacity.capacity_report` per host (columns
            host, resource, earliest_days, likely_days, latest_days; labels optional).
        horizon_days: draw the horizon as a vertical line.
        title: the figure title.

    Returns:
        Traces ``likely`` (horizontal bars; error bars to the earliest and latest crossing,
        NaN latest drawn to the horizon) and ``earliest only`` (markers for series whose
        likely crossing is past the horizon but whose earliest is not).
    """
    import numpy as np
    import plotly.graph_objects as go

    cols = ["host", "resource", "earliest_days", "likely_days", "latest_days"]
    frame = require(report, cols, "capacity_figure").copy()
    labels = frame["labels"].fillna("") if "labels" in frame.columns else ""
    frame["series"] = frame["host"] + " · " + frame["resource"]
    frame["series"] = frame["series"].where(labels == "", frame["series"] + " · " + labels)
    likely = frame[frame["likely_days"].notna()].sort_values("likely_days", ascending=False)
    far = likely["latest_days"].fillna(horizon_days if horizon_days is not None else np.nan)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=likely["series"],
            x=likely["likely_days"],
            orientation="h",
            name="likely",
            marker={"color": COLORS["threshold"]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (far - likely["likely_days"]).clip(lower=0).fillna(0),
                "arrayminus": (likely["likely_days"] - likely["earliest_days"]).fillna(0),
            },
        )
    )
    risk = frame[frame["likely_days"].isna() & frame["earliest_days"].notna()]
    fig.add_trace(
        go.Scatter(
            y=risk["series"],
            x=risk["earliest_days"],
            mode="markers",
            name="earliest only",
            marker={"symbol": "triangle-left", "size": 10, "color": COLORS["forecast"]},
        )
    )
    if horizon_days is not None:
        fig.add_vline(x=horizon_days, line={"dash": "dot", "color": "grey"}, name="horizon")
    return finish(fig, title, "days from now", "")


def threshold_figure(
    series: pd.DataFrame,
    crossing: Crossing,
    *,
    title: str = "Trend to threshold",
    y_title: str = "value",
) -> go.Figure:
    """One series with its trend extended to the threshold, the crossing window shaded.

    Args:
        series: ts (datetimes or epoch seconds) and value.
        crossing: :func:`~slothlab.analytics.capacity.time_to_threshold` of that series.

    Returns:
        Traces ``history`` and ``trend``; shapes: the threshold (``threshold``), a ``vrect``
        from the earliest to the latest crossing (``crossing window``; to the plot's end when
        the latest is past the horizon) and a line at the likely one (``likely crossing``).
    """
    import plotly.graph_objects as go

    frame = require(series, ["ts", "value"], "threshold_figure")
    ts = as_time(frame["ts"])
    first = ts.iloc[0].timestamp() if len(ts) else crossing.now
    span = max(crossing.now - first, _DAY)
    known = [w for w in (crossing.earliest, crossing.likely, crossing.latest) if w is not None]
    end = max([crossing.now + span / 4, *known])
    x = [first, crossing.now, end]
    y = [crossing.current + crossing.slope_per_day * (t - crossing.now) / _DAY for t in x]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=ts, y=frame["value"], name="history", line={"color": COLORS["value"]})
    )
    fig.add_trace(
        go.Scatter(
            x=as_time(x), y=y, name="trend", line={"color": COLORS["forecast"], "dash": "dash"}
        )
    )
    fig.add_hline(y=crossing.threshold, line={"color": COLORS["threshold"]}, name="threshold")
    when = _stamp
    if crossing.earliest is not None:
        stop = crossing.latest if crossing.latest is not None else end
        fig.add_vrect(
            x0=when(crossing.earliest),
            x1=when(stop),
            fillcolor=COLORS["threshold"],
            opacity=0.12,
            line_width=0,
            name="crossing window",
        )
    if crossing.likely is not None:
        fig.add_vline(
            x=when(crossing.likely),
            line={"color": COLORS["threshold"], "dash": "dot"},
            name="likely crossing",
        )
    return finish(fig, title, "time (UTC)", y_title)


def _stamp(epoch: float) -> Any:
    import pandas as pd

    return pd.Timestamp(epoch, unit="s", tz="UTC")
