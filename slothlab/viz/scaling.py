"""A scaling plan: agents as steps over the load they serve.

>>> import numpy as np
>>> import pandas as pd
>>> frame = pd.DataFrame({"ts": np.arange(0.0, 300.0, 60.0), "load": [5.0, 12, 25, 18, 6],
...                       "upper": [8.0, 15, 28, 20, 9], "agents": [1, 2, 3, 3, 2]})
>>> fig = scaling_figure(frame, capacity_per_agent=10)
>>> [t.name for t in fig.data]
['load', 'forecast upper bound', 'capacity', 'agents']
>>> fig.data[3].line.shape, fig.data[3].yaxis
('hv', 'y2')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.viz._style import COLORS, as_time, finish, require

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["scaling_figure"]


def scaling_figure(
    plan: Any,
    *,
    capacity_per_agent: float | None = None,
    compare: Any = None,
    compare_name: str = "HPA",
    title: str = "Scaling plan",
) -> go.Figure:
    """Load (and its forecast upper bound) against the agents the plan runs, as steps.

    Args:
        plan: a :class:`~slothlab.analytics.scaling.ScalingPlan` or its ``frame`` (columns ts,
            agents; load and upper drawn when present and not all NaN).
        capacity_per_agent: draws ``capacity`` = agents x capacity on the load axis (taken
            from a ScalingPlan when not given).
        compare: another plan (or frame) to draw as a second agents step line, e.g. the
            reactive HPA replay on the same series.
        compare_name: its name in the legend (``agents (HPA)``).
        title: the figure title.

    Returns:
        Traces ``load``, ``forecast upper bound``, ``capacity`` (steps), ``agents`` (steps, on
        the right axis ``y2``) and ``agents (<compare_name>)``; those without data are left
        out.
    """
    import plotly.graph_objects as go

    frame, capacity = _unpack(plan, capacity_per_agent)
    ts = as_time(frame["ts"])
    fig = go.Figure()
    for column, name, style in [
        ("load", "load", {"color": COLORS["value"]}),
        ("upper", "forecast upper bound", {"color": COLORS["forecast"], "dash": "dot"}),
    ]:
        if column in frame and frame[column].notna().any():
            fig.add_trace(go.Scatter(x=ts, y=frame[column], name=name, line=style))
    if capacity is not None:
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=frame["agents"] * capacity,
                name="capacity",
                line={"shape": "hv", "color": COLORS["capacity"]},
                fill="tozeroy",
                fillcolor=COLORS["capacity"],
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=frame["agents"],
            name="agents",
            yaxis="y2",
            line={"shape": "hv", "color": COLORS["agents"], "width": 2},
        )
    )
    if compare is not None:
        other, _ = _unpack(compare, None)
        fig.add_trace(
            go.Scatter(
                x=as_time(other["ts"]),
                y=other["agents"],
                yaxis="y2",
                name=f"agents ({compare_name})",
                line={"shape": "hv", "color": "grey", "dash": "dash"},
            )
        )
    finish(fig, title, "time (UTC)", "load")
    fig.update_layout(
        yaxis2={
            "title": {"text": "agents"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )
    return fig


def _unpack(plan: Any, capacity: float | None) -> tuple[pd.DataFrame, float | None]:
    frame = getattr(plan, "frame", plan)
    if capacity is None:
        capacity = getattr(plan, "capacity_per_agent", None)
    return require(frame, ["ts", "agents"], "scaling_figure"), capacity
