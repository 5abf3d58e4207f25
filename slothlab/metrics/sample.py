"""One metric sample: the unit the collector produces and the history stores."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["NO_LABELS", "Sample"]

NO_LABELS: Mapping[str, str] = MappingProxyType({})


class Sample(NamedTuple):
    """A value of one metric on one host at one time.

    Attributes:
        ts: seconds since the epoch (UTC).
        host: the host (agent name) the value belongs to.
        metric: the metric name, Prometheus style (``slothlab_cpu_usage_ratio``).
        value: the value.
        labels: extra label pairs (``{"mount": "/"}``).

    >>> Sample(0.0, "web-1", "slothlab_load1", 0.5).labels
    mappingproxy({})
    """

    ts: float
    host: str
    metric: str
    value: float
    labels: Mapping[str, str] = NO_LABELS
