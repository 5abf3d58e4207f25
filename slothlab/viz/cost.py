"""Cost per day stacked by tag, with what rightsizing would save.

>>> import pandas as pd
>>> day = pd.Timestamp("2024-01-01", tz="UTC")
>>> report = pd.DataFrame({"day": [day, day], "host": ["web-1", "db-1"], "tag": ["web", "db"],
...                        "hours": [24.0, 24.0], "cost": [4.6, 9.2]})
>>> advice = pd.DataFrame({"host": ["db-1"], "monthly_savings": [73.0]})
>>> fig = cost_figure(report, savings=advice)
>>> [t.name for t in fig.data], fig.layout.barmode
(['db', 'web', 'after rightsizing'], 'stack')
>>> round(float(fig.data[2].y[0]), 2)
11.4
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slothlab.viz._style import COLORS, as_time, finish, require

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["cost_figure"]

_MONTH_HOURS = 730.0


def cost_figure(
    report: pd.DataFrame,
    *,
    savings: pd.DataFrame | None = None,
    title: str = "Cost per day",
    currency: str = "USD",
) -> go.Figure:
    """Daily cost as bars stacked by tag; with rightsizing advice, the daily cost after it.

    Args:
        report: a :func:`~slothlab.analytics.cost.cost_report` (columns day, tag, cost; host
            and hours to apply savings).
        savings: a :func:`~slothlab.analytics.cost.rightsize` result (host, monthly_savings):
            each host's hourly saving times its hours that day comes off the day's total.
        title: the figure title.
        currency: the unit on the cost axis.

    Returns:
        One bar trace per tag (``untagged`` for ""), stacked; with ``savings`` a line
        ``after rightsizing`` and an annotation with the monthly saving.
    """
    import plotly.graph_objects as go

    frame = require(report, ["day", "tag", "cost"], "cost_figure")
    pivot = frame.pivot_table(index="day", columns="tag", values="cost", aggfunc="sum").fillna(0)
    days = as_time(pivot.index)
    fig = go.Figure()
    for tag in sorted(pivot.columns):
        fig.add_trace(go.Bar(x=days, y=pivot[tag].to_numpy(), name=tag or "untagged"))
    if savings is not None:
        per_day = _daily_savings(frame, savings).reindex(pivot.index).fillna(0)
        after = pivot.sum(axis=1) - per_day
        fig.add_trace(
            go.Scatter(
                x=days,
                y=after.to_numpy(),
                name="after rightsizing",
                mode="lines+markers",
                line={"color": COLORS["savings"], "dash": "dash"},
            )
        )
        monthly = float(
            require(savings, ["host", "monthly_savings"], "cost_figure")["monthly_savings"].sum()
        )
        fig.add_annotation(
            text=f"rightsizing saves {monthly:,.0f} {currency} a month",
            xref="paper",
            yref="paper",
            x=1,
            y=1.08,
            showarrow=False,
            name="savings",
        )
    fig.update_layout(barmode="stack")
    return finish(fig, title, "day (UTC)", f"cost ({currency})")


def _daily_savings(report: pd.DataFrame, savings: pd.DataFrame) -> pd.Series:
    frame = require(report, ["day", "host", "hours"], "cost_figure with savings")
    per_hour = require(savings, ["host", "monthly_savings"], "cost_figure").set_index("host")
    hourly = per_hour["monthly_savings"] / _MONTH_HOURS
    hosts = frame.drop_duplicates(["day", "host"])  # a host with several tags counts once
    saved = hosts["hours"] * hosts["host"].map(hourly).fillna(0)
    return saved.groupby(hosts["day"]).sum()
