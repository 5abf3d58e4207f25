"""Predictive scaling plans and the HPA replay they are measured against."""

from __future__ import annotations

import numpy as np
import pytest

from slothlab.analytics import scaling_plan, simulate_hpa, simulate_predictive
from slothlab.analytics.forecasting import Forecast, SeasonalNaive

DAY = 288


def periodic_load(days: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(days * DAY)
    load = 100 + 60 * np.sin(2 * np.pi * t / DAY)
    return load, t * 300.0


def test_a_plan_starts_agents_early_and_stops_them_late() -> None:
    upper = np.array([5.0] * 5 + [25.0] * 3 + [5.0] * 8)
    f = Forecast(np.arange(16.0), upper, upper, upper, 0.9, "test")
    plan = scaling_plan(f, capacity_per_agent=10, lead_steps=2, stabilization_steps=3)
    agents = plan.frame["agents"].tolist()
    assert agents.index(3) == 3  # two steps before the load arrives at step 5
    assert agents[10] == 3 and agents[11] == 1  # held three steps after it left at step 7
    assert plan.frame["target"].max() == 3


def test_a_plan_refuses_a_capacity_of_zero() -> None:
    f = Forecast(np.arange(2.0), np.ones(2), np.ones(2), np.ones(2), 0.9, "test")
    with pytest.raises(ValueError, match="capacity_per_agent"):
        scaling_plan(f, capacity_per_agent=0)


def test_a_perfect_forecast_is_never_short_while_hpa_lags() -> None:
    y, ts = periodic_load(4)
    kwargs = {"test_points": DAY, "lead_steps": 3, "stabilization_steps": 2}
    ours = simulate_predictive(y, ts, lambda: SeasonalNaive(DAY), 10.0, **kwargs).summary()
    hpa = simulate_hpa(y, ts, 10.0, target_utilization=1.0, **kwargs).summary()
    assert ours["under_provisioned_share"] == 0.0
    assert hpa["under_provisioned_share"] > 0.0
    assert ours["excess_agent_hours"] <= hpa["excess_agent_hours"] + 1


def test_hpa_follows_its_rule_with_tolerance() -> None:
    y = np.full(40, 100.0)
    y[20:] = 300.0
    ts = np.arange(40) * 300.0
    plan = simulate_hpa(y, ts, 10.0, test_points=30, target_utilization=1.0, lead_steps=2)
    frame = plan.frame
    assert frame["agents"].iloc[0] == 10
    jump = frame.index[frame["load"] == 300.0][0]
    assert frame.loc[jump, "agents"] == 10  # the new agents are not ready yet
    assert frame["agents"].iloc[-1] == 30
    with pytest.raises(ValueError, match="target_utilization"):
        simulate_hpa(y, ts, 10.0, test_points=10, target_utilization=1.5)


def test_a_plan_takes_the_frame_forecast_returns() -> None:
    import pandas as pd

    from slothlab.analytics import forecast

    index = pd.date_range("2024-05-01", periods=3 * DAY, freq="5min")
    frame = forecast(pd.Series(periodic_load(3)[0], index=index), horizon=12)
    plan = scaling_plan(frame, capacity_per_agent=10)
    same = scaling_plan(Forecast.from_frame(frame), capacity_per_agent=10)
    assert plan.frame["agents"].tolist() == same.frame["agents"].tolist()
    assert plan.frame["ts"].iloc[0] == frame["ts"].iloc[0].timestamp()
    assert plan.policy == f"predictive ({frame.attrs['model']})"
