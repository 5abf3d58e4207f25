"""Metrics: host collector, custom metrics, health checks, alerts, DuckDB history, exposition."""

from __future__ import annotations

from slothlab.metrics.sample import NO_LABELS, Sample

__all__ = ["NO_LABELS", "Sample"]
