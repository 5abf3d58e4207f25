"""Metrics: host collector, custom metrics, health checks, alerts, DuckDB history, exposition."""

from __future__ import annotations

from slothlab.metrics.alerts import AlertManager, AlertRule, rules_from_config
from slothlab.metrics.collector import Collector, PsutilSource, default_collector
from slothlab.metrics.custom import CustomMetrics, default_custom_metrics
from slothlab.metrics.exposition import render
from slothlab.metrics.health import (
    HealthMonitor,
    checks_from_config,
    default_checks,
    health_document,
    health_status,
)
from slothlab.metrics.history import MetricsHistory, Retention, read_export
from slothlab.metrics.importer import import_series
from slothlab.metrics.notify import LogNotifier, WebhookNotifier
from slothlab.metrics.recorder import Recorder
from slothlab.metrics.sample import NO_LABELS, Sample

# sorted() order, which tests/test_exported_members.py checks (ruff puts NO_LABELS first)
__all__ = [  # noqa: RUF022
    "AlertManager",
    "AlertRule",
    "Collector",
    "CustomMetrics",
    "HealthMonitor",
    "LogNotifier",
    "MetricsHistory",
    "NO_LABELS",
    "PsutilSource",
    "Recorder",
    "Retention",
    "Sample",
    "WebhookNotifier",
    "checks_from_config",
    "default_checks",
    "default_collector",
    "default_custom_metrics",
    "health_document",
    "health_status",
    "import_series",
    "read_export",
    "render",
    "rules_from_config",
]
