"""Analytics: streaming anomaly detection with calibrated scores, and the NAB scorer.

Detectors follow one contract (:class:`Detector` per metric, :class:`HostDetector` per host),
are found by name in a registry fed by the ``slothlab.detectors`` entry points, and score in
[0, 1] on an anomaly-likelihood scale. :func:`detect` scores a pandas series in one call.

>>> from slothlab.analytics import get
>>> get("default").score_batch([1.0, 2.0, 3.0]).tolist()
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

try:
    import numpy as _numpy  # noqa: F401
except ImportError as _exc:  # pragma: no cover - the extra is installed in development
    from slothlab.errors import MissingDependencyError

    raise MissingDependencyError("numpy", "analytics") from _exc

from slothlab.analytics.base import Detector, HostDetector
from slothlab.analytics.capacity import (
    CapacityTarget,
    capacity_report,
    growth_rate,
    time_to_threshold,
)
from slothlab.analytics.cost import cost_report, rightsize, savings_estimate
from slothlab.analytics.detect import DEFAULT_THRESHOLD, detect, detect_history, flagged_intervals
from slothlab.analytics.detectors import (
    ContextDetector,
    IsolationForestDetector,
    NoveltyDetector,
    ZScoreDetector,
)
from slothlab.analytics.forecasting import Forecast, Forecaster, choose_forecaster, forecast
from slothlab.analytics.likelihood import AnomalyLikelihood
from slothlab.analytics.prices import PriceCatalogue
from slothlab.analytics.recommend import bottlenecks, recommend
from slothlab.analytics.registry import DetectorFactory, get, names, register
from slothlab.analytics.remediation import (
    LuaAction,
    Remediator,
    Rule,
    ScaleAction,
    ShellAction,
    Trigger,
    on_anomaly,
    on_forecast,
    on_health,
)
from slothlab.analytics.scaling import (
    ScalingPlan,
    scaling_plan,
    simulate_hpa,
    simulate_predictive,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "AnomalyLikelihood",
    "CapacityTarget",
    "ContextDetector",
    "Detector",
    "DetectorFactory",
    "Forecast",
    "Forecaster",
    "HostDetector",
    "IsolationForestDetector",
    "LuaAction",
    "NoveltyDetector",
    "PriceCatalogue",
    "Remediator",
    "Rule",
    "ScaleAction",
    "ScalingPlan",
    "ShellAction",
    "Trigger",
    "ZScoreDetector",
    "bottlenecks",
    "capacity_report",
    "choose_forecaster",
    "cost_report",
    "detect",
    "detect_history",
    "flagged_intervals",
    "forecast",
    "get",
    "growth_rate",
    "names",
    "on_anomaly",
    "on_forecast",
    "on_health",
    "recommend",
    "register",
    "rightsize",
    "savings_estimate",
    "scaling_plan",
    "simulate_hpa",
    "simulate_predictive",
    "time_to_threshold",
]
