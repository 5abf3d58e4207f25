"""Figures: pure functions from DataFrames to ``plotly.graph_objects.Figure``.

The same figures serve the notebook widgets (wrapped in ``FigureWidget``), the web dashboard
and the reports (``fig.to_html(include_plotlyjs="inline")`` works offline). Each function
checks its input and names the missing columns.

* :func:`anomaly_figure` — a :func:`slothlab.analytics.detect` result: value, anomaly score,
  flagged intervals shaded.
* :func:`forecast_figure` — history and a forecast's fan (mean, lower and upper bounds).
* :func:`scaling_figure` — a scaling plan: agents as steps over the load (optionally vs HPA).
* :func:`capacity_figure` / :func:`threshold_figure` — days to threshold per host; one trend.
* :func:`cost_figure` — daily cost stacked by tag, the cost after rightsizing.
"""

from __future__ import annotations

try:
    import plotly as _plotly  # noqa: F401
except ImportError as _exc:  # pragma: no cover - the extra is installed in development
    from slothlab.errors import MissingDependencyError

    raise MissingDependencyError("plotly", "analytics") from _exc

from slothlab.viz.anomalies import anomaly_figure, flagged_spans
from slothlab.viz.capacity import capacity_figure, threshold_figure
from slothlab.viz.cost import cost_figure
from slothlab.viz.forecast import forecast_figure
from slothlab.viz.scaling import scaling_figure

__all__ = [
    "anomaly_figure",
    "capacity_figure",
    "cost_figure",
    "flagged_spans",
    "forecast_figure",
    "scaling_figure",
    "threshold_figure",
]
