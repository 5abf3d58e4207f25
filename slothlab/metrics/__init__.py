"""Metrics: host collector, custom metrics, health checks, alerts, DuckDB history, exposition."""

from __future__ import annotations

from slothlab.metrics.history import MetricsHistory, Retention, read_export
from slothlab.metrics.importer import import_series
from slothlab.metrics.sample import NO_LABELS, Sample

__all__ = [
    "MetricsHistory",
    "NO_LABELS",
    "Retention",
    "Sample",
    "import_series",
    "read_export",
]
