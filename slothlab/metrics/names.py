"""Metric and label names: the host collector's names, validation and convention checks.

Names follow Prometheus conventions: ``snake_case``, a ``slothlab_`` prefix for what slothlab
measures itself, base units (``_bytes``, ``_seconds``, ``_ratio`` for 0..1) and ``_total`` on
counters only.

>>> check_metric_name("queue_depth")
'queue_depth'
>>> check_metric_name("queue-depth")
Traceback (most recent call last):
...
slothlab.errors.MetricNameError: metric name 'queue-depth' is not valid: use letters, digits \
and underscores, not starting with a digit (e.g. 'queue_depth')
>>> lint_metric_name("latency_ms", "histogram")
['use the base unit: seconds instead of milliseconds (latency_seconds)']
"""

from __future__ import annotations

import re

from slothlab.errors import MetricNameError

__all__ = [
    "CPU_CORE_USAGE_RATIO",
    "CPU_USAGE_RATIO",
    "DISK_FREE_BYTES",
    "DISK_READ_BYTES_PER_SECOND",
    "DISK_READ_BYTES_TOTAL",
    "DISK_TOTAL_BYTES",
    "DISK_USAGE_RATIO",
    "DISK_USED_BYTES",
    "DISK_WRITE_BYTES_PER_SECOND",
    "DISK_WRITE_BYTES_TOTAL",
    "HOST_METRICS",
    "LOAD1",
    "LOAD5",
    "LOAD15",
    "MEMORY_AVAILABLE_BYTES",
    "MEMORY_TOTAL_BYTES",
    "MEMORY_USAGE_RATIO",
    "MEMORY_USED_BYTES",
    "NETWORK_RECEIVE_BYTES_PER_SECOND",
    "NETWORK_RECEIVE_BYTES_TOTAL",
    "NETWORK_TRANSMIT_BYTES_PER_SECOND",
    "NETWORK_TRANSMIT_BYTES_TOTAL",
    "PROCESSES",
    "PROCESS_CPU_USAGE_RATIO",
    "PROCESS_RESIDENT_MEMORY_BYTES",
    "SWAP_TOTAL_BYTES",
    "SWAP_USAGE_RATIO",
    "SWAP_USED_BYTES",
    "UPTIME_SECONDS",
    "check_label_name",
    "check_metric_name",
    "lint_metric_name",
]

CPU_USAGE_RATIO = "slothlab_cpu_usage_ratio"
CPU_CORE_USAGE_RATIO = "slothlab_cpu_core_usage_ratio"
MEMORY_TOTAL_BYTES = "slothlab_memory_total_bytes"
MEMORY_USED_BYTES = "slothlab_memory_used_bytes"
MEMORY_AVAILABLE_BYTES = "slothlab_memory_available_bytes"
MEMORY_USAGE_RATIO = "slothlab_memory_usage_ratio"
SWAP_TOTAL_BYTES = "slothlab_swap_total_bytes"
SWAP_USED_BYTES = "slothlab_swap_used_bytes"
SWAP_USAGE_RATIO = "slothlab_swap_usage_ratio"
DISK_TOTAL_BYTES = "slothlab_disk_total_bytes"
DISK_USED_BYTES = "slothlab_disk_used_bytes"
DISK_FREE_BYTES = "slothlab_disk_free_bytes"
DISK_USAGE_RATIO = "slothlab_disk_usage_ratio"
DISK_READ_BYTES_PER_SECOND = "slothlab_disk_read_bytes_per_second"
DISK_WRITE_BYTES_PER_SECOND = "slothlab_disk_write_bytes_per_second"
DISK_READ_BYTES_TOTAL = "slothlab_disk_read_bytes_total"
DISK_WRITE_BYTES_TOTAL = "slothlab_disk_write_bytes_total"
NETWORK_RECEIVE_BYTES_PER_SECOND = "slothlab_network_receive_bytes_per_second"
NETWORK_TRANSMIT_BYTES_PER_SECOND = "slothlab_network_transmit_bytes_per_second"
NETWORK_RECEIVE_BYTES_TOTAL = "slothlab_network_receive_bytes_total"
NETWORK_TRANSMIT_BYTES_TOTAL = "slothlab_network_transmit_bytes_total"
LOAD1 = "slothlab_load1"
LOAD5 = "slothlab_load5"
LOAD15 = "slothlab_load15"
PROCESSES = "slothlab_processes"
UPTIME_SECONDS = "slothlab_uptime_seconds"
PROCESS_RESIDENT_MEMORY_BYTES = "slothlab_process_resident_memory_bytes"
PROCESS_CPU_USAGE_RATIO = "slothlab_process_cpu_usage_ratio"

HOST_METRICS: dict[str, tuple[str, str]] = {
    CPU_USAGE_RATIO: ("gauge", "Share of CPU time spent busy over the last interval (0..1)."),
    CPU_CORE_USAGE_RATIO: ("gauge", "Share of one core's time spent busy (0..1), per core."),
    MEMORY_TOTAL_BYTES: ("gauge", "Physical memory in bytes."),
    MEMORY_USED_BYTES: ("gauge", "Physical memory in use in bytes."),
    MEMORY_AVAILABLE_BYTES: ("gauge", "Memory available to new processes in bytes."),
    MEMORY_USAGE_RATIO: ("gauge", "Share of physical memory not available (0..1)."),
    SWAP_TOTAL_BYTES: ("gauge", "Swap space in bytes."),
    SWAP_USED_BYTES: ("gauge", "Swap space in use in bytes."),
    SWAP_USAGE_RATIO: ("gauge", "Share of swap space in use (0..1)."),
    DISK_TOTAL_BYTES: ("gauge", "Size of the filesystem in bytes, per mount point."),
    DISK_USED_BYTES: ("gauge", "Space used on the filesystem in bytes, per mount point."),
    DISK_FREE_BYTES: ("gauge", "Space free to unprivileged users in bytes, per mount point."),
    DISK_USAGE_RATIO: ("gauge", "Share of the filesystem in use (0..1), per mount point."),
    DISK_READ_BYTES_PER_SECOND: ("gauge", "Bytes read from disks per second, last interval."),
    DISK_WRITE_BYTES_PER_SECOND: ("gauge", "Bytes written to disks per second, last interval."),
    DISK_READ_BYTES_TOTAL: ("counter", "Bytes read from disks since boot."),
    DISK_WRITE_BYTES_TOTAL: ("counter", "Bytes written to disks since boot."),
    NETWORK_RECEIVE_BYTES_PER_SECOND: ("gauge", "Bytes received per second (no loopback)."),
    NETWORK_TRANSMIT_BYTES_PER_SECOND: ("gauge", "Bytes sent per second (no loopback)."),
    NETWORK_RECEIVE_BYTES_TOTAL: ("counter", "Bytes received since boot (no loopback)."),
    NETWORK_TRANSMIT_BYTES_TOTAL: ("counter", "Bytes sent since boot (no loopback)."),
    LOAD1: ("gauge", "Load average over 1 minute."),
    LOAD5: ("gauge", "Load average over 5 minutes."),
    LOAD15: ("gauge", "Load average over 15 minutes."),
    PROCESSES: ("gauge", "Number of processes on the host."),
    UPTIME_SECONDS: ("gauge", "Seconds since the host booted."),
    PROCESS_RESIDENT_MEMORY_BYTES: ("gauge", "Resident memory of the sampling process in bytes."),
    PROCESS_CPU_USAGE_RATIO: ("gauge", "CPU used by the sampling process, share of one core."),
}
"""Every host metric the collector produces: name -> (Prometheus type, help text)."""

_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNITS = {
    "ms": "seconds",
    "milliseconds": "seconds",
    "us": "seconds",
    "microseconds": "seconds",
    "ns": "seconds",
    "nanoseconds": "seconds",
    "sec": "seconds",
    "minutes": "seconds",
    "hours": "seconds",
    "kb": "bytes",
    "mb": "bytes",
    "gb": "bytes",
    "kilobytes": "bytes",
    "megabytes": "bytes",
    "gigabytes": "bytes",
    "percent": "ratio",
}
_UNIT_NAMES = {
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "sec": "sec",
    "kb": "kilobytes",
    "mb": "megabytes",
    "gb": "gigabytes",
}


def check_metric_name(name: object) -> str:
    """``name`` if it is a valid metric name, else :class:`MetricNameError` saying why.

    Valid: letters, digits and ``_``, not starting with a digit or ``__`` (reserved).
    Colons are refused too: Prometheus keeps them for recording rules.
    """
    if not isinstance(name, str) or not name:
        raise MetricNameError(f"a metric name must be a non-empty string, not {name!r}")
    if not _METRIC_NAME.fullmatch(name):
        suggestion = re.sub(r"[^a-zA-Z0-9_]", "_", name).lstrip("0123456789") or "my_metric"
        raise MetricNameError(
            f"metric name {name!r} is not valid: use letters, digits and underscores, "
            f"not starting with a digit (e.g. {suggestion!r})"
        )
    if name.startswith("__"):
        raise MetricNameError(f"metric name {name!r} starts with '__', which is reserved")
    return name


def check_label_name(name: object, *, reserved: frozenset[str] = frozenset()) -> str:
    """``name`` if it is a valid label (tag) name, else :class:`MetricNameError` saying why.

    >>> check_label_name("route")
    'route'
    >>> check_label_name("le", reserved=frozenset({"le"}))
    Traceback (most recent call last):
    ...
    slothlab.errors.MetricNameError: tag name 'le' is reserved for this metric type; rename it
    """
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        raise MetricNameError(
            f"tag name {name!r} is not valid: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if name.startswith("__"):
        raise MetricNameError(f"tag name {name!r} starts with '__', which is reserved")
    if name in reserved:
        raise MetricNameError(f"tag name {name!r} is reserved for this metric type; rename it")
    return name


def lint_metric_name(name: str, kind: str) -> list[str]:
    """Ways ``name`` breaks Prometheus naming conventions for a metric of type ``kind``.

    ``kind`` is ``gauge``, ``counter``, ``histogram`` or ``timer``. An empty list means the name
    is conventional. Counters are exported with ``_total`` appended when it is missing, and
    timers with ``_seconds``; those are not reported here.

    >>> lint_metric_name("jobs_total", "gauge")
    ['only counters end in _total']
    >>> lint_metric_name("queueDepth", "gauge")
    ['use snake_case, not camelCase']
    """
    problems: list[str] = []
    if any(c.isupper() for c in name):
        problems.append("use snake_case, not camelCase")
    if kind != "counter" and name.endswith("_total"):
        problems.append("only counters end in _total")
    parts = name.lower().split("_")
    for unit in parts[1:]:
        if unit in _UNITS:
            base = _UNITS[unit]
            better = "_".join(p for p in name.split("_") if p.lower() != unit) + f"_{base}"
            shown = _UNIT_NAMES.get(unit, unit)
            problems.append(f"use the base unit: {base} instead of {shown} ({better})")
    return problems
