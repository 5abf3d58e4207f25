"""Metrics: host collector, custom metrics, health checks, alerts, DuckDB history, exposition."""

from __future__ import annotations

from slothlab.metrics.collector import Collector, PsutilSource, default_collector
from slothlab.metrics.custom import CustomMetrics
from slothlab.metrics.exposition import render
from slothlab.metrics.history import MetricsHistory, Retention, read_export
from slothlab.metrics.importer import import_series
from slothlab.metrics.sample import NO_LABELS, Sample

__all__ = [
    "Collector",
    "CustomMetrics",
    "MetricsHistory",
    "NO_LABELS",
    "PsutilSource",
    "Retention",
    "Sample",
    "default_collector",
    "import_series",
    "read_export",
    "render",
]
