"""Health checks: thresholds, HTTP, TCP, shell and Lua probes, a monitor, and ``/health``.

>>> from slothlab.metrics.health import HealthMonitor, StaticSource, default_checks
>>> source = StaticSource({"cpu": {"percent": 10}, "memory": {"percent": 20},
...                        "disk": {"/": {"percent": 30}}})
>>> monitor = HealthMonitor(default_checks(source), clock=lambda: 0.0)
>>> _ = monitor.tick()
>>> health_document(monitor)[0]
200
"""

from __future__ import annotations

from slothlab.metrics.health.base import (
    Check,
    CheckResult,
    Recovery,
    Status,
    is_status,
    worst,
)
from slothlab.metrics.health.checks import (
    CommandCheck,
    HttpCheck,
    LuaCheck,
    SnapshotSource,
    StaticSource,
    TcpCheck,
    ThresholdCheck,
)
from slothlab.metrics.health.config import (
    CollectorSource,
    checks_from_config,
    checks_from_file,
    default_checks,
    parse_seconds,
)
from slothlab.metrics.health.document import (
    health_document,
    health_status,
    http_status_for,
    lua_health_status,
)
from slothlab.metrics.health.monitor import (
    CheckState,
    HealthMonitor,
    RecoveryAttempt,
    StateChange,
    StateName,
)

__all__ = [
    "Check",
    "CheckResult",
    "CheckState",
    "CollectorSource",
    "CommandCheck",
    "HealthMonitor",
    "HttpCheck",
    "LuaCheck",
    "Recovery",
    "RecoveryAttempt",
    "SnapshotSource",
    "StateChange",
    "StateName",
    "StaticSource",
    "Status",
    "TcpCheck",
    "ThresholdCheck",
    "checks_from_config",
    "checks_from_file",
    "default_checks",
    "health_document",
    "health_status",
    "http_status_for",
    "is_status",
    "lua_health_status",
    "parse_seconds",
    "worst",
]
