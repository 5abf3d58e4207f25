"""Predictive scaling: how many agents to run when, from a forecast — and how it compares to HPA.

A plan provisions for the forecast's upper bound: at each step the target is
``ceil(upper / capacity_per_agent)``. Agents take ``lead_steps`` to become ready, so a scale-out
is decided that much earlier; a scale-in waits until the target has stayed lower for
``stabilization_steps`` (like Kubernetes' scale-down stabilisation window).

:func:`simulate_predictive` replays that policy over the end of a series, forecasting from every
step with the data known then; :func:`simulate_hpa` replays the reactive Kubernetes HPA rule
``desired = ceil(current * metric / target)`` on the same series. Both return a
:class:`ScalingPlan` whose :meth:`~ScalingPlan.summary` gives the share of under-provisioned
intervals and the excess agent-hours.

>>> import numpy as np
>>> from slothlab.analytics.forecasting import Forecast
>>> upper = np.array([10.0, 10.0, 30.0, 30.0, 10.0, 10.0, 10.0])
>>> f = Forecast(np.arange(7.0), upper, upper, upper, 0.9, "example")
>>> plan = scaling_plan(f, capacity_per_agent=10, lead_steps=1, stabilization_steps=2)
>>> plan.frame["agents"].tolist()
[1, 3, 3, 3, 3, 3, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slothlab.analytics.forecasting._series import check_series, step_of

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    from slothlab.analytics.forecasting import Forecast, Forecaster

__all__ = ["ScalingPlan", "scaling_plan", "simulate_hpa", "simulate_predictive"]


@dataclass
class ScalingPlan:
    """Agents over time. ``frame`` has ``ts``, ``load`` (NaN for a plan of the future),
    ``target`` (agents wanted), ``agents`` (agents running) and ``needed`` (agents the load
    needed, NaN for the future)."""

    frame: pd.DataFrame
    capacity_per_agent: float
    step_s: float
    policy: str

    def summary(self) -> dict[str, Any]:
        """Under-provisioned share, excess agent-hours, mean agents and scale events."""
        import numpy as np

        f = self.frame.dropna(subset=["needed"])
        short = f["agents"] < f["needed"]
        excess = np.maximum(f["agents"] - f["needed"], 0).sum() * self.step_s / 3600
        changes = int((self.frame["agents"].diff().fillna(0) != 0).sum())
        return {
            "policy": self.policy,
            "intervals": len(f),
            "under_provisioned_share": float(short.mean()) if len(f) else 0.0,
            "missing_agent_hours": float(
                np.maximum(f["needed"] - f["agents"], 0).sum() * self.step_s / 3600
            ),
            "excess_agent_hours": float(excess),
            "mean_agents": float(self.frame["agents"].mean()),
            "scale_events": changes,
        }


def _agents_for(load: NDArray[np.float64], capacity: float, floor: int) -> NDArray[np.int64]:
    import numpy as np

    return np.maximum(np.ceil(np.maximum(load, 0) / capacity - 1e-9), floor).astype(np.int64)


def _stabilize(target: NDArray[np.int64], window: int) -> NDArray[np.int64]:
    """Scale out at once; scale in only to the highest target of the last ``window`` steps."""
    import numpy as np
    import pandas as pd

    held = pd.Series(target).rolling(window + 1, min_periods=1).max()
    return np.asarray(held, dtype=np.int64)


def scaling_plan(
    forecast: Forecast | pd.DataFrame,
    capacity_per_agent: float,
    *,
    lead_steps: int = 3,
    stabilization_steps: int = 6,
    min_agents: int = 1,
    max_agents: int | None = None,
) -> ScalingPlan:
    """A plan for the forecast's steps: start agents ``lead_steps`` early, stop them late.

    Row ``k`` says how many agents should be running (or starting) at the forecast's step
    ``k``: enough for the upper bound of the next ``lead_steps`` steps, held for
    ``stabilization_steps`` before a scale-in. ``forecast`` is a :class:`Forecast` or the
    DataFrame :func:`~slothlab.analytics.forecast` returns.
    """
    import numpy as np
    import pandas as pd

    if isinstance(forecast, pd.DataFrame):
        from slothlab.analytics.forecasting import Forecast

        forecast = Forecast.from_frame(forecast)
    if capacity_per_agent <= 0:
        raise ValueError(f"capacity_per_agent must be positive, not {capacity_per_agent}")
    target = _agents_for(forecast.upper, capacity_per_agent, min_agents)
    ahead = pd.Series(target[::-1]).rolling(lead_steps + 1, min_periods=1).max()[::-1]
    agents = _stabilize(np.asarray(ahead, dtype=np.int64), stabilization_steps)
    if max_agents is not None:
        agents = np.minimum(agents, max_agents)
    frame = pd.DataFrame(
        {"ts": forecast.timestamps, "load": np.nan, "upper": forecast.upper,
         "target": target, "agents": agents, "needed": np.nan}
    )  # fmt: skip
    step = float(np.median(np.diff(forecast.timestamps))) if len(forecast.timestamps) > 1 else 0
    return ScalingPlan(frame, capacity_per_agent, step, f"predictive ({forecast.model})")


def simulate_predictive(
    values: Any,
    timestamps: Any,
    make: Callable[[], Forecaster],
    capacity_per_agent: float,
    *,
    test_points: int,
    lead_steps: int = 3,
    stabilization_steps: int = 6,
    refit_every: int = 144,
    min_agents: int = 1,
) -> ScalingPlan:
    """Replay predictive scaling over the last ``test_points`` steps of a series.

    At every step ``t`` the forecaster (refitted every ``refit_every`` steps, extended with the
    data known at ``t`` in between) forecasts ``lead_steps`` ahead; the target for ``t + lead``
    is ``ceil(upper / capacity)``. Agents decided at ``t`` run from ``t + lead``.
    """
    import numpy as np
    import pandas as pd

    y, ts = check_series(values, timestamps)
    n, start = len(y), len(y) - test_points
    decided = np.full(n + lead_steps, min_agents, dtype=np.int64)
    model: Forecaster | None = None
    uppers = np.full(n, np.nan)
    for t in range(start - lead_steps, n - lead_steps):
        if model is None or (t - start) % refit_every == 0:
            model = make().fit(y[: t + 1], ts[: t + 1])
        else:
            model.extend(y[: t + 1], ts[: t + 1])
        upper = model.predict(lead_steps).upper
        uppers[t + lead_steps] = upper[-1]
        decided[t + lead_steps] = _agents_for(upper[-1:], capacity_per_agent, min_agents)[0]
    target = decided[start:n]
    agents = _stabilize(decided[:n], stabilization_steps)[start:]
    frame = pd.DataFrame(
        {"ts": ts[start:], "load": y[start:], "upper": uppers[start:], "target": target,
         "agents": agents, "needed": _agents_for(y[start:], capacity_per_agent, 0)}
    )  # fmt: skip
    return ScalingPlan(frame, capacity_per_agent, step_of(ts), "predictive")


def simulate_hpa(
    values: Any,
    timestamps: Any,
    capacity_per_agent: float,
    *,
    test_points: int,
    target_utilization: float = 0.8,
    tolerance: float = 0.1,
    lead_steps: int = 3,
    stabilization_steps: int = 6,
    min_agents: int = 1,
) -> ScalingPlan:
    """Replay the Kubernetes HPA rule over the last ``test_points`` steps of a series.

    Each step: ``utilization = load / (current * capacity)``; when it is more than
    ``tolerance`` away from ``target_utilization``, ``desired = ceil(current * utilization /
    target_utilization)``. New agents become ready ``lead_steps`` later; scale-in is held for
    ``stabilization_steps`` (HPA's default window is 5 minutes, one step of 5-minute data).
    """
    import numpy as np
    import pandas as pd

    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization must be in (0, 1], not {target_utilization}")
    y, ts = check_series(values, timestamps)
    n, start = len(y), len(y) - test_points
    per_agent = capacity_per_agent * target_utilization
    first = int(_agents_for(y[start - 1 : start], per_agent, min_agents)[0])
    spec = np.full(n, first, dtype=np.int64)  # the replica count asked for at each step
    available = np.full(n, first, dtype=np.int64)
    recent: list[int] = []
    for t in range(start, n):
        # asked-for agents are ready lead_steps later; removals take effect at once
        available[t] = min(spec[t - 1], spec[max(t - 1 - lead_steps, 0)])
        running = max(int(available[t]), 1)
        ratio = y[t] / (running * per_agent)
        desired = int(spec[t - 1]) if abs(ratio - 1) <= tolerance else int(np.ceil(running * ratio))
        recent = [*recent[-stabilization_steps:], max(desired, min_agents)]
        spec[t] = max(recent) if recent[-1] < spec[t - 1] else recent[-1]
    frame = pd.DataFrame(
        {"ts": ts[start:], "load": y[start:], "upper": np.nan, "target": spec[start:],
         "agents": available[start:], "needed": _agents_for(y[start:], capacity_per_agent, 0)}
    )  # fmt: skip
    return ScalingPlan(frame, capacity_per_agent, step_of(ts), f"hpa@{target_utilization:g}")
