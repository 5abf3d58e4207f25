"""scaling_figure: a real scaling plan's agents as steps over the load, against HPA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.forecasting import Forecast
from slothlab.analytics.scaling import scaling_plan
from slothlab.errors import AnalyticsError
from slothlab.viz import scaling_figure


def _utc(value: object) -> pd.Timestamp:
    """A plotted x value as a UTC timestamp (plotly keeps UTC datetimes without the zone)."""
    stamp = pd.Timestamp(value)
    return stamp if stamp.tzinfo else stamp.tz_localize("UTC")


def _plan():
    upper = np.array([10.0, 10.0, 30.0, 30.0, 10.0, 10.0, 10.0])
    f = Forecast(np.arange(7.0) * 300, upper * 0.8, upper, upper * 0.6, 0.9, "example")
    return scaling_plan(f, capacity_per_agent=10, lead_steps=1, stabilization_steps=2)


def test_plan_steps_capacity_and_second_axis() -> None:
    plan = _plan()
    fig = scaling_figure(plan)
    names = [t.name for t in fig.data]
    assert names == ["forecast upper bound", "capacity", "agents"]  # load is NaN for the future
    agents = fig.data[2]
    assert agents.line.shape == "hv" and agents.yaxis == "y2"
    assert list(agents.y) == plan.frame["agents"].tolist()
    assert list(fig.data[1].y) == (plan.frame["agents"] * 10).tolist()
    assert fig.layout.yaxis2.title.text == "agents" and fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.yaxis.title.text == "load"


def test_frame_input_with_load_and_a_comparison() -> None:
    plan = _plan()
    frame = plan.frame.assign(load=plan.frame["upper"] * 0.9)
    hpa = frame.assign(agents=[1, 1, 1, 3, 3, 3, 1])
    fig = scaling_figure(frame, compare=hpa)
    assert [t.name for t in fig.data] == [
        "load",
        "forecast upper bound",
        "agents",
        "agents (HPA)",
    ]
    assert fig.data[3].line.dash == "dash" and fig.data[3].yaxis == "y2"
    assert _utc(fig.data[0].x[1]) == pd.Timestamp(300, unit="s", tz="UTC")
    with pytest.raises(AnalyticsError, match=r"needs the columns \['agents'\]"):
        scaling_figure(frame.drop(columns="agents"))
