"""The ``/health`` document: the overall status, every check's state, and the HTTP code to use.

>>> from slothlab.metrics.health.checks import StaticSource, ThresholdCheck
>>> check = ThresholdCheck("disk", "disk", critical=95, source=StaticSource({"disk": 99}),
...                        failure_threshold=1)
>>> monitor = HealthMonitor([check], clock=lambda: 0.0)
>>> _ = monitor.tick()
>>> code, doc = health_document(monitor)
>>> code, doc["status"], doc["checks"]["disk"]["status"], doc["timestamp"]
(503, 'critical', 'critical', '1970-01-01T00:00:00.000Z')
"""

from __future__ import annotations

from typing import Any

from slothlab.metrics._timefmt import rfc3339
from slothlab.metrics.health.base import Status
from slothlab.metrics.health.monitor import HealthMonitor

__all__ = ["health_document", "health_status", "http_status_for", "lua_health_status"]


def http_status_for(status: Status) -> int:
    """The HTTP code of a ``/health`` answer: 200 when ok or warning, 503 when critical.

    >>> http_status_for("warning"), http_status_for("critical")
    (200, 503)
    """
    return 503 if status == "critical" else 200


def health_status(monitor: HealthMonitor) -> dict[str, Any]:
    """The JSON-ready health document of ``monitor``.

    ``{"status": "ok"|"warning"|"critical", "checks": {name: {...}}, "timestamp": RFC 3339}``;
    each check has its confirmed ``status`` (or ``"unknown"`` before it is confirmed), the
    newest ``message``, ``latency_s`` and ``details``, and its streak counters.
    """
    checks = monitor.checks
    states = monitor.states()
    return {
        "status": monitor.status(),
        "checks": {
            name: {**state.to_dict(), "kind": checks[name].kind}
            for name, state in states.items()
            if name in checks
        },
        "timestamp": rfc3339(monitor.clock()),
    }


def health_document(monitor: HealthMonitor) -> tuple[int, dict[str, Any]]:
    """``(http_code, document)`` ready for a ``/health`` route."""
    document = health_status(monitor)
    return http_status_for(document["status"]), document


_LUA_WORDS = {"ok": "healthy", "warning": "warning", "critical": "critical", "unknown": "unknown"}


def lua_health_status(monitor: HealthMonitor) -> dict[str, Any]:
    """The monitor in the shape of Lua's ``metrics.health_status()`` (sloth-runner's words).

    ``{check: {status = "healthy"|"warning"|"critical"|"unknown", message, usage}, overall,
    timestamp}``; ``usage`` is the value a threshold check read. A host sets
    ``runtime.context["health_status"] = lambda: lua_health_status(monitor)``.

    >>> from slothlab.metrics.health.checks import StaticSource, ThresholdCheck
    >>> check = ThresholdCheck("cpu", "cpu", warning=80, source=StaticSource({"cpu": 85}),
    ...                        failure_threshold=1)
    >>> monitor = HealthMonitor([check], clock=lambda: 0.0)
    >>> _ = monitor.tick()
    >>> status = lua_health_status(monitor)
    >>> status["cpu"]["status"], status["cpu"]["usage"], status["overall"]
    ('warning', 85.0, 'warning')
    """
    out: dict[str, Any] = {}
    for name, state in monitor.states().items():
        result = state.last_result
        entry: dict[str, Any] = {
            "status": _LUA_WORDS[state.status],
            "message": result.message if result else "not run yet",
        }
        if result is not None and "value" in result.details:
            entry["usage"] = result.details["value"]
        out[name] = entry
    out["overall"] = _LUA_WORDS[monitor.status()]
    out["timestamp"] = rfc3339(monitor.clock())
    return out
